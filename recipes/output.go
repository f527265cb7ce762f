package recipes

import (
	"fmt"

	"github.com/hashicorp/hcl/v2"
)

// outputBlockSchema is the output block: the disk formats a build publishes.
var outputBlockSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "formats"}, {Name: "compress"}, {Name: "vmdk_subformat"}, {Name: "vhd_subformat"},
		{Name: "qcow2_compressed"}, {Name: "cpus"}, {Name: "memory"},
	},
}

var (
	formatsArg   = arg{"formats", `["raw", "qcow2"]`, false}
	compressArg  = arg{"compress", `"zstd"`, false}
	vmdkSubArg   = arg{"vmdk_subformat", `"streamOptimized"`, false}
	vhdSubArg    = arg{"vhd_subformat", `"fixed"`, false}
	qcow2CompArg = arg{"qcow2_compressed", `true`, false}
	cpusArg      = arg{"cpus", `2`, false}
	memoryArg    = arg{"memory", `"2GiB"`, false}
)

// outputFormats lists every format Kiln writes, in the order docs show them.
var outputFormats = []string{"raw", "qcow2", "vmdk", "vhd", "vhdx", "ova"}

var (
	compressions   = []string{"zstd", "xz", "none"}
	vmdkSubformats = []string{"streamOptimized", "monolithicSparse"}
	vhdSubformats  = []string{"fixed", "dynamic"}
)

// outputBlock is a decoded output block.
type outputBlock struct {
	Output
	src          *decoded
	formatRanges []hcl.Range
}

func defaultOutput() Output {
	return Output{Formats: defaultFormats(), Compress: "zstd", VMDKSubformat: "streamOptimized", VHDSubformat: "fixed", CPUs: 2, MemoryMiB: 1024}
}

// decodeOutputBlock decodes an output block.
func (d *decoder) decodeOutputBlock(block *hcl.Block) (*outputBlock, hcl.Diagnostics) {
	content, diags := block.Body.Content(outputBlockSchema)
	b := &outputBlock{Output: defaultOutput(), src: newDecoded("output", block.DefRange, content.Attributes)}
	b.Range = toRange(block.DefRange)
	d.getStrList(b.src, formatsArg, &b.Formats, &b.formatRanges, &diags)
	d.getStr(b.src, compressArg, &b.Compress, &diags)
	d.getStr(b.src, vmdkSubArg, &b.VMDKSubformat, &diags)
	d.getStr(b.src, vhdSubArg, &b.VHDSubformat, &diags)
	d.getBool(b.src, qcow2CompArg, &b.QCOW2Compressed, &diags)
	d.getInt(b.src, cpusArg, &b.CPUs, &diags)
	var mem uint64
	d.getSize(b.src, memoryArg, &mem, &diags)
	if b.src.ok["memory"] {
		b.MemoryMiB = int(mem >> 20)
	}
	return b, diags
}

// validate checks each format, pointing at the list element.
func (b *outputBlock) validate() hcl.Diagnostics {
	var diags hcl.Diagnostics
	enum := func(name, val string, allowed []string) {
		if a, ok := b.src.valid(name); ok && !contains(allowed, val) {
			diags = append(diags, errorDiag(a.Expr.Range(), "Invalid "+name,
				fmt.Sprintf("%q is not a valid %s. Use %s.", val, name, quoteList(allowed))))
		}
	}
	enum("compress", b.Compress, compressions)
	enum("vmdk_subformat", b.VMDKSubformat, vmdkSubformats)
	enum("vhd_subformat", b.VHDSubformat, vhdSubformats)
	if a, ok := b.src.valid("cpus"); ok && (b.CPUs < 1 || b.CPUs > 256) {
		diags = append(diags, errorDiag(a.Expr.Range(), "Invalid cpus", "cpus (for the OVA's virtual machine) is from 1 to 256."))
	}
	if a, ok := b.src.valid("memory"); ok && (b.MemoryMiB < 128 || b.MemoryMiB > 4<<20) {
		diags = append(diags, errorDiag(a.Expr.Range(), "Invalid memory", `memory (for the OVA's virtual machine) is from "128MiB" to "4TiB".`))
	}
	a, ok := b.src.valid("formats")
	if !ok {
		return diags
	}
	if len(b.Formats) == 0 {
		diags = append(diags, errorDiag(a.Expr.Range(), "No output formats",
			`An image needs at least one output format. Write formats = ["raw"], or leave formats out for the default, ["raw"].`))
	}
	seen := map[string]hcl.Range{}
	for i, f := range b.Formats {
		rng := b.formatRanges[i]
		switch first, dup := seen[f]; {
		case dup:
			diags = append(diags, errorDiag(rng, "Duplicate output format",
				fmt.Sprintf("%q is already listed at %s. List each format once.", f, at(first))))
		case !contains(outputFormats, f):
			diags = append(diags, errorDiag(rng, "Invalid output format",
				fmt.Sprintf("%q is not an output format. Use %s.", f, quoteList(outputFormats))))
		}
		if _, dup := seen[f]; !dup {
			seen[f] = rng
		}
	}
	return diags
}
