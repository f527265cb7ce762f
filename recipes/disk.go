package recipes

import (
	"fmt"
	"path"
	"regexp"
	"strconv"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"

	"github.com/kiln-build/kiln/internal/parttype"
	"github.com/kiln-build/kiln/internal/units"
	"github.com/kiln-build/kiln/platform"
)

// diskBlockSchema is the disk block: the size and layout of the image.
var diskBlockSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "size"}, {Name: "table"}, {Name: "esp_size"}, {Name: "headroom"},
		{Name: "seed"}, {Name: "guid"}, {Name: "signature"}, {Name: "grow"}, {Name: "esp_automount"},
	},
	Blocks: []hcl.BlockHeaderSchema{{Type: "partition", LabelNames: []string{"label"}}},
}

var (
	sizeArg      = arg{"size", `"2GiB"`, false} // DefaultDiskSize when absent, as without a disk block
	tableArg     = arg{"table", `"gpt"`, false}
	espSizeArg   = arg{"esp_size", `"256MiB"`, false}
	headroomArg  = arg{"headroom", `20`, false}
	seedArg      = arg{"seed", `"fleet-a"`, false}
	diskGUIDArg  = arg{"guid", `"5B2A1C3D-0E4F-4A5B-8C6D-7E8F90A1B2C3"`, false}
	signatureArg = arg{"signature", `"0x1a2b3c4d"`, false}
	growArg      = arg{"grow", `true`, false}
	automountArg = arg{"esp_automount", `false`, false}
)

// diskBlock is a decoded disk block.
type diskBlock struct {
	Disk
	src        *decoded
	partitions []*partitionBlock
}

func defaultDisk() Disk {
	return Disk{Size: DefaultDiskSize, Table: DefaultTable, ESPSize: DefaultESPSize, Headroom: DefaultHeadroom, Grow: true, ESPAutomount: true, Partitions: []Partition{}}
}

// decodeDiskBlock decodes a disk block. Sizes are strings such as "2GiB",
// numbers of bytes, or "auto" for the whole disk.
func (d *decoder) decodeDiskBlock(block *hcl.Block) (*diskBlock, hcl.Diagnostics) {
	content, diags := block.Body.Content(diskBlockSchema)
	b := &diskBlock{Disk: defaultDisk(), src: newDecoded("disk", block.DefRange, content.Attributes)}
	b.Range = toRange(block.DefRange)
	if a := b.src.attr(sizeArg, &diags); a != nil {
		if s, ok := d.autoOrNothing(a); ok {
			if s == "auto" {
				b.Size, b.Auto, b.src.ok["size"] = 0, true, true
			}
		} else {
			d.getSize(b.src, sizeArg, &b.Size, &diags)
		}
	}
	getName(d, b.src, tableArg, &b.Table, &diags)
	d.getSize(b.src, espSizeArg, &b.ESPSize, &diags)
	d.getInt(b.src, headroomArg, &b.Headroom, &diags)
	d.getStr(b.src, seedArg, &b.Seed, &diags)
	d.getStr(b.src, diskGUIDArg, &b.GUID, &diags)
	var sig string
	d.getStr(b.src, signatureArg, &sig, &diags)
	if a, ok := b.src.valid("signature"); ok {
		v, err := strconv.ParseUint(strings.TrimPrefix(strings.ToLower(sig), "0x"), 16, 32)
		if err != nil || !strings.HasPrefix(strings.ToLower(sig), "0x") || v == 0 {
			diags = append(diags, errorDiag(a.Expr.Range(), "Invalid disk signature",
				fmt.Sprintf("%q is not an MBR disk signature. Write 8 hex digits after 0x, not all zero, such as signature = %s.", sig, signatureArg.example)))
			b.src.ok["signature"] = false
		} else {
			b.Signature = uint32(v)
		}
	}
	d.getBool(b.src, growArg, &b.Grow, &diags)
	d.getBool(b.src, automountArg, &b.ESPAutomount, &diags)
	for _, pb := range content.Blocks {
		p, dd := d.decodePartitionBlock(pb)
		diags = append(diags, dd...)
		b.partitions = append(b.partitions, p)
		b.Partitions = append(b.Partitions, p.Partition)
	}
	return b, diags
}

// autoOrNothing reports whether attr is the string "auto" (ok) without
// reporting anything; any other value is left to the size decoder.
func (d *decoder) autoOrNothing(attr *hcl.Attribute) (string, bool) {
	v, diags := unmarkedValue(attr.Expr, d.ctx)
	if diags.HasErrors() || v.IsNull() || !v.IsKnown() || v.Type() != cty.String {
		return "", false
	}
	if strings.EqualFold(v.AsString(), "auto") {
		return "auto", true
	}
	return "", false
}

var guidRE = regexp.MustCompile(`^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$`)

// validate checks the decoded values. Whether the partitions fit the disk
// and the firmware is the boot mode's check (see bootModes).
func (b *diskBlock) validate() hcl.Diagnostics {
	var diags hcl.Diagnostics
	if a, ok := b.src.valid("size"); ok && !b.Auto {
		switch {
		case b.Size < MinDiskSize:
			diags = append(diags, errorDiag(a.Expr.Range(), "Disk too small",
				fmt.Sprintf("%s is below the minimum disk size of %s. Make size at least %q, or \"auto\".", units.FormatSize(b.Size), units.FormatSize(MinDiskSize), units.FormatSize(MinDiskSize))))
		case b.Size > MaxDiskSize:
			diags = append(diags, errorDiag(a.Expr.Range(), "Disk too large",
				fmt.Sprintf("%s is above the maximum disk size of %s. Make size smaller.", units.FormatSize(b.Size), units.FormatSize(MaxDiskSize))))
		}
	}
	if a, ok := b.src.valid("table"); ok && !b.Table.Valid() {
		diags = append(diags, errorDiag(a.Expr.Range(), "Invalid partition table",
			fmt.Sprintf("%q is not a partition table. Use %s; the default is %q.", b.Table, quoteList(platform.Tables), DefaultTable)))
	}
	if a, ok := b.src.valid("esp_size"); ok {
		if b.ESPSize < MinESPSize {
			diags = append(diags, errorDiag(a.Expr.Range(), "EFI system partition too small",
				fmt.Sprintf("%s is below %s, the smallest FAT32 filesystem. Make esp_size at least %q, or leave it out for %s.", units.FormatSize(b.ESPSize), units.FormatSize(MinESPSize), units.FormatSize(MinESPSize), units.FormatSize(DefaultESPSize))))
		} else if len(b.partitions) > 0 {
			diags = append(diags, errorDiag(a.Expr.Range(), "esp_size with partition blocks",
				"esp_size sizes the ESP of the default layout; with partition blocks, give the esp partition its own size and remove esp_size."))
		}
	}
	if a, ok := b.src.valid("esp_automount"); ok && len(b.partitions) > 0 {
		diags = append(diags, errorDiag(a.Expr.Range(), "esp_automount with partition blocks",
			"esp_automount sets how the ESP of the default layout is mounted; declared partitions mount with their own options. Remove esp_automount, and give the esp partition options = \"umask=0077,noauto,x-systemd.automount\" to have it mounted on first use."))
	}
	if a, ok := b.src.valid("headroom"); ok {
		if b.Headroom < 0 || b.Headroom > 1000 {
			diags = append(diags, errorDiag(a.Expr.Range(), "Invalid headroom",
				fmt.Sprintf("headroom is a percentage from 0 to 1000; %d is outside it.", b.Headroom)))
		} else if !b.Auto {
			diags = append(diags, errorDiag(a.Expr.Range(), "headroom without size = \"auto\"",
				"headroom is the room added to the content when size = \"auto\". Set size = \"auto\" or remove headroom."))
		}
	}
	if a, ok := b.src.valid("guid"); ok && !guidRE.MatchString(b.GUID) {
		diags = append(diags, errorDiag(a.Expr.Range(), "Invalid GUID",
			fmt.Sprintf("%q is not a GUID. Write one such as guid = %s, or leave it out to derive it from the image's name, version and seed.", b.GUID, diskGUIDArg.example)))
	}
	for _, p := range b.partitions {
		diags = append(diags, p.validate()...)
	}
	diags = append(diags, b.checkPartitions()...)
	return diags
}

// checkPartitions checks the rules that concern several partitions.
func (b *diskBlock) checkPartitions() hcl.Diagnostics {
	var diags hcl.Diagnostics
	if len(b.partitions) == 0 {
		return nil
	}
	labels, mounts := map[string]*partitionBlock{}, map[string]*partitionBlock{}
	var rest, root *partitionBlock
	for _, p := range b.partitions {
		if first := labels[strings.ToLower(p.Label)]; first != nil {
			diags = append(diags, errorDiag(p.labelRange, "Duplicate partition label",
				fmt.Sprintf("There is already a partition labelled %q at %s. Give each partition its own label.", p.Label, at(first.src.def))))
		} else {
			labels[strings.ToLower(p.Label)] = p
		}
		if p.Mount != "" {
			if first := mounts[p.Mount]; first != nil {
				a, _ := p.src.valid("mount")
				diags = append(diags, errorDiag(rangeOf(a, p.src.def), "Duplicate mount point",
					fmt.Sprintf("%s is already the mount point of partition %q at %s.", p.Mount, first.Label, at(first.src.def))))
			} else {
				mounts[p.Mount] = p
			}
		}
		if p.Rest {
			if rest != nil {
				a, _ := p.src.valid("size")
				diags = append(diags, errorDiag(rangeOf(a, p.src.def), "Two partitions take the rest",
					fmt.Sprintf("Partition %q at %s already takes the rest of the disk; give this one a size.", rest.Label, at(rest.src.def))))
			} else {
				rest = p
			}
		}
		if p.Mount == "/" {
			root = p
		}
	}
	if root == nil {
		diags = append(diags, errorDiag(b.src.def, "No root partition",
			"One partition must be mounted at /: add mount = \"/\" to it (type = \"root\" mounts at / by default)."))
	}
	return diags
}

// partitionBlockSchema is a partition block inside the disk block.
var partitionBlockSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "size"}, {Name: "type"}, {Name: "filesystem"}, {Name: "mount"}, {Name: "options"}, {Name: "guid"}, {Name: "uuid"},
	},
}

var (
	partSizeArg  = arg{"size", `"1GiB"`, true}
	partTypeArg  = arg{"type", `"linux"`, true}
	partFSArg    = arg{"filesystem", `"ext4"`, false}
	partMountArg = arg{"mount", `"/var"`, false}
	partOptsArg  = arg{"options", `"noatime"`, false}
	partGUIDArg  = arg{"guid", `"5B2A1C3D-0E4F-4A5B-8C6D-7E8F90A1B2C3"`, false}
	partUUIDArg  = arg{"uuid", `"5b2a1c3d-0e4f-4a5b-8c6d-7e8f90a1b2c3"`, false}
)

var (
	filesystems      = []string{"ext4", "vfat", "swap", "none"}
	partitionLabelRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,15}$`)
	volumeIDRE       = regexp.MustCompile(`^[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}$`)
)

type partitionBlock struct {
	Partition
	src        *decoded
	labelRange hcl.Range
	typ        parttype.Type
	typeOK     bool
}

func (d *decoder) decodePartitionBlock(block *hcl.Block) (*partitionBlock, hcl.Diagnostics) {
	content, diags := block.Body.Content(partitionBlockSchema)
	p := &partitionBlock{Partition: Partition{Label: block.Labels[0], Range: toRange(block.DefRange)},
		src: newDecoded("partition", block.DefRange, content.Attributes), labelRange: block.LabelRanges[0]}
	if a := p.src.attr(partSizeArg, &diags); a != nil {
		if v, dd := unmarkedValue(a.Expr, d.ctx); !dd.HasErrors() && v.Type() == cty.String && !v.IsNull() && strings.EqualFold(v.AsString(), "rest") {
			p.Rest, p.src.ok["size"] = true, true
		} else {
			d.getSize(p.src, partSizeArg, &p.Size, &diags)
		}
	}
	d.getStr(p.src, partTypeArg, &p.Type, &diags)
	if a, ok := p.src.valid("type"); ok {
		t, err := parttype.Parse(p.Type)
		if err != nil {
			diags = append(diags, errorDiag(a.Expr.Range(), "Invalid partition type",
				fmt.Sprintf("%q is not a partition type. Use one of %s, a GPT type GUID, or an MBR type byte such as \"0x83\".", p.Type, quoteList(parttype.Aliases()))))
		} else {
			p.typ, p.typeOK = t, true
			p.TypeGUID, p.TypeMBR, p.Filesystem, p.Mount = t.GUID, t.MBR, t.FS, t.Mount
			if p.Filesystem == "" {
				p.Filesystem = "none"
			}
		}
	}
	d.getStr(p.src, partFSArg, &p.Filesystem, &diags)
	d.getStr(p.src, partMountArg, &p.Mount, &diags)
	d.getStr(p.src, partOptsArg, &p.Options, &diags)
	d.getStr(p.src, partGUIDArg, &p.GUID, &diags)
	d.getStr(p.src, partUUIDArg, &p.UUID, &diags)
	return p, diags
}

func (p *partitionBlock) validate() hcl.Diagnostics {
	var diags hcl.Diagnostics
	if !partitionLabelRE.MatchString(p.Label) {
		diags = append(diags, errorDiag(p.labelRange, "Invalid partition label",
			fmt.Sprintf("%q cannot label a partition: use 1 to 16 letters, digits, dots, dashes and underscores, starting with a letter or digit (ext4 labels hold 16 bytes).", p.Label)))
	}
	if a, ok := p.src.valid("size"); ok && !p.Rest && p.Size < units.MiB {
		diags = append(diags, errorDiag(a.Expr.Range(), "Partition too small",
			fmt.Sprintf("Partitions are at least 1MiB (they are aligned to 1MiB); %s is less. Use a larger size or \"rest\".", units.FormatSize(p.Size))))
	}
	fsAttr, fsOK := p.src.valid("filesystem")
	if fsOK && !contains(filesystems, p.Filesystem) {
		diags = append(diags, errorDiag(fsAttr.Expr.Range(), "Invalid filesystem",
			fmt.Sprintf("%q is not a filesystem Kiln writes. Use %s.", p.Filesystem, quoteList(filesystems))))
		fsOK = false
	}
	fsRange := rangeOf(fsAttr, p.src.def)
	if p.typeOK {
		typeAttr, _ := p.src.valid("type")
		switch {
		case p.typ.Alias == "esp" && p.Filesystem != "vfat":
			diags = append(diags, errorDiag(fsRange, "EFI system partition must be vfat",
				"UEFI firmware reads the EFI system partition as FAT. Set filesystem = \"vfat\" or leave it out."))
		case p.typ.Alias == "bios" && p.Filesystem != "none":
			diags = append(diags, errorDiag(fsRange, "BIOS boot partition holds no filesystem",
				"GRUB writes its core image straight into the BIOS boot partition. Remove filesystem (or set it to \"none\")."))
		case p.typ.Alias == "swap" && p.Filesystem != "swap":
			diags = append(diags, errorDiag(fsRange, "Swap partition must hold swap",
				"Set filesystem = \"swap\" or leave it out, or use another type for a filesystem."))
		case p.Filesystem == "swap" && p.typ.Alias != "swap":
			diags = append(diags, errorDiag(rangeOf(typeAttr, p.src.def), "Swap needs the swap type",
				"Set type = \"swap\" for a swap partition."))
		}
		if p.typ.Alias == "esp" && p.Size > 0 && p.Size < MinESPSize {
			a, _ := p.src.valid("size")
			diags = append(diags, errorDiag(rangeOf(a, p.src.def), "EFI system partition too small",
				fmt.Sprintf("FAT32 needs at least %s; make the esp partition at least %q.", units.FormatSize(MinESPSize), units.FormatSize(MinESPSize))))
		}
		if p.typ.Alias == "bios" && p.Rest {
			a, _ := p.src.valid("size")
			diags = append(diags, errorDiag(rangeOf(a, p.src.def), "BIOS boot partition takes the rest",
				"A BIOS boot partition needs only 1MiB: set size = \"1MiB\"."))
		}
	}
	mountAttr, _ := p.src.valid("mount")
	if p.Mount != "" {
		mountRange := rangeOf(mountAttr, p.src.def)
		switch {
		case !path.IsAbs(p.Mount) || path.Clean(p.Mount) != p.Mount:
			diags = append(diags, errorDiag(mountRange, "Invalid mount point",
				fmt.Sprintf("%q is not a clean absolute path. Write a mount point such as \"/var\".", p.Mount)))
		case contains(filesystems, p.Filesystem) && (p.Filesystem == "none" || p.Filesystem == "swap"):
			diags = append(diags, errorDiag(mountRange, "Mount point without a filesystem",
				fmt.Sprintf("A partition with filesystem %q cannot be mounted. Remove mount or give it a filesystem.", p.Filesystem)))
		case p.Mount == "/" && contains(filesystems, p.Filesystem) && p.Filesystem != "ext4":
			diags = append(diags, errorDiag(rangeOf(fsAttr, mountRange), "Root filesystem must be ext4",
				"Kiln writes the root filesystem as ext4; set filesystem = \"ext4\" or leave it out."))
		}
	}
	if a, ok := p.src.valid("options"); ok && p.Mount == "" {
		diags = append(diags, errorDiag(a.Expr.Range(), "Mount options without a mount point",
			"options are the partition's mount options in /etc/fstab; set mount too, or remove options."))
	}
	if a, ok := p.src.valid("guid"); ok && !guidRE.MatchString(p.GUID) {
		diags = append(diags, errorDiag(a.Expr.Range(), "Invalid GUID",
			fmt.Sprintf("%q is not a GUID. Write one such as %s, or leave it out to derive it.", p.GUID, partGUIDArg.example)))
	}
	if a, ok := p.src.valid("uuid"); ok {
		valid := guidRE.MatchString(p.UUID)
		if p.Filesystem == "vfat" {
			valid = volumeIDRE.MatchString(p.UUID)
		}
		if !valid {
			diags = append(diags, errorDiag(a.Expr.Range(), "Invalid filesystem UUID",
				fmt.Sprintf("%q is not a filesystem UUID for %s. ext4 and swap take a UUID such as %s; vfat takes a volume ID such as \"1A2B-3C4D\".", p.UUID, p.Filesystem, partUUIDArg.example)))
		}
	}
	return diags
}

func rangeOf(a *hcl.Attribute, def hcl.Range) hcl.Range {
	if a != nil {
		return a.Expr.Range()
	}
	return def
}
