package recipes

import (
	"fmt"

	"github.com/hashicorp/hcl/v2"
)

// outputBlockSchema is the output block: the disk formats a build publishes.
var outputBlockSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{{Name: "formats"}},
}

var formatsArg = arg{"formats", `["raw"]`, false}

// outputFormats lists every format the language knows, and whether Kiln
// can write it yet.
var outputFormats = map[string]bool{
	"raw":   true,
	"qcow2": false,
	"vmdk":  false,
	"vhd":   false,
	"vhdx":  false,
}

// supportedFormats and plannedFormats list outputFormats for messages.
var (
	supportedFormats = []string{"raw"}
	plannedFormats   = []string{"qcow2", "vmdk", "vhd", "vhdx"}
)

// outputBlock is a decoded output block.
type outputBlock struct {
	Output
	src          *decoded
	formatRanges []hcl.Range
}

func defaultOutput() Output { return Output{Formats: defaultFormats()} }

// decodeOutputBlock decodes an output block.
func (d *decoder) decodeOutputBlock(block *hcl.Block) (*outputBlock, hcl.Diagnostics) {
	content, diags := block.Body.Content(outputBlockSchema)
	b := &outputBlock{Output: defaultOutput(), src: newDecoded("output", block.DefRange, content.Attributes)}
	b.Range = toRange(block.DefRange)
	d.getStrList(b.src, formatsArg, &b.Formats, &b.formatRanges, &diags)
	return b, diags
}

// validate checks each format, pointing at the list element.
func (b *outputBlock) validate() hcl.Diagnostics {
	a, ok := b.src.valid("formats")
	if !ok {
		return nil
	}
	var diags hcl.Diagnostics
	if len(b.Formats) == 0 {
		diags = append(diags, errorDiag(a.Expr.Range(), "No output formats",
			`An image needs at least one output format. Write formats = ["raw"], or leave formats out for the default, ["raw"].`))
	}
	seen := map[string]hcl.Range{}
	for i, f := range b.Formats {
		rng := b.formatRanges[i]
		supported, known := outputFormats[f]
		switch first, dup := seen[f]; {
		case dup:
			diags = append(diags, errorDiag(rng, "Duplicate output format",
				fmt.Sprintf("%q is already listed at %s. List each format once.", f, at(first))))
		case !known:
			diags = append(diags, errorDiag(rng, "Invalid output format",
				fmt.Sprintf("%q is not an output format. Supported: %s.", f, quoteList(supportedFormats))))
		case !supported:
			diags = append(diags, errorDiag(rng, "Output format not supported yet",
				fmt.Sprintf("Kiln cannot write %q images yet (%s are planned). Use %s, and convert the raw image with qemu-img convert if you need another format.", f, quoteList(plannedFormats), quoteList(supportedFormats))))
		}
		if _, dup := seen[f]; !dup {
			seen[f] = rng
		}
	}
	return diags
}
