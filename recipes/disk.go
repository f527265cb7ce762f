package recipes

import (
	"fmt"

	"github.com/hashicorp/hcl/v2"

	"github.com/kiln-build/kiln/internal/units"
)

// diskBlockSchema is the disk block: the size and layout of the image.
var diskBlockSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{{Name: "size"}, {Name: "table"}, {Name: "esp_size"}},
}

var (
	sizeArg    = arg{"size", `"2GiB"`, true}
	tableArg   = arg{"table", `"gpt"`, false}
	espSizeArg = arg{"esp_size", `"256MiB"`, false}
)

// partitionTables are the table values the language knows; which of them
// can be built is up to bootModes.
var partitionTables = []string{"gpt", "mbr"}

// diskBlock is a decoded disk block.
type diskBlock struct {
	Disk
	src *decoded
}

func defaultDisk() Disk {
	return Disk{Size: DefaultDiskSize, Table: DefaultTable, ESPSize: DefaultESPSize}
}

// decodeDiskBlock decodes a disk block. Sizes are strings such as "2GiB"
// or numbers of bytes.
func (d *decoder) decodeDiskBlock(block *hcl.Block) (*diskBlock, hcl.Diagnostics) {
	content, diags := block.Body.Content(diskBlockSchema)
	b := &diskBlock{Disk: defaultDisk(), src: newDecoded("disk", block.DefRange, content.Attributes)}
	b.Range = toRange(block.DefRange)
	d.getSize(b.src, sizeArg, &b.Size, &diags)
	d.getStr(b.src, tableArg, &b.Table, &diags)
	d.getSize(b.src, espSizeArg, &b.ESPSize, &diags)
	return b, diags
}

// validate checks the decoded values. Whether the partitions fit is the
// boot mode's check (see bootModes).
func (b *diskBlock) validate() hcl.Diagnostics {
	var diags hcl.Diagnostics
	if a, ok := b.src.valid("size"); ok {
		switch {
		case b.Size < MinDiskSize:
			diags = append(diags, errorDiag(a.Expr.Range(), "Disk too small",
				fmt.Sprintf("%s is below the minimum disk size of %s. Make size at least %q.", units.FormatSize(b.Size), units.FormatSize(MinDiskSize), units.FormatSize(MinDiskSize))))
		case b.Size > MaxDiskSize:
			diags = append(diags, errorDiag(a.Expr.Range(), "Disk too large",
				fmt.Sprintf("%s is above the maximum disk size of %s. Make size smaller.", units.FormatSize(b.Size), units.FormatSize(MaxDiskSize))))
		}
	}
	if a, ok := b.src.valid("table"); ok && !contains(partitionTables, b.Table) {
		diags = append(diags, errorDiag(a.Expr.Range(), "Invalid partition table",
			fmt.Sprintf("%q is not a partition table. Use %s; the default is %q.", b.Table, quoteList(partitionTables), DefaultTable)))
	}
	if a, ok := b.src.valid("esp_size"); ok && b.ESPSize < MinESPSize {
		diags = append(diags, errorDiag(a.Expr.Range(), "EFI system partition too small",
			fmt.Sprintf("%s is below %s, the smallest FAT32 filesystem. Make esp_size at least %q, or leave it out for %s.", units.FormatSize(b.ESPSize), units.FormatSize(MinESPSize), units.FormatSize(MinESPSize), units.FormatSize(DefaultESPSize))))
	}
	return diags
}
