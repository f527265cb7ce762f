package recipes

import (
	"bytes"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclwrite"
)

// Format returns src, read from filename, in the canonical layout (HCL's
// own, as terraform fmt and packer fmt write it: one argument per line,
// the = of neighbouring arguments aligned, two-space indentation, comments
// aligned). It formats recipes, component files, pipelines files and
// variables files alike, since it looks only at the syntax. A file with
// syntax errors is not formatted: the errors are returned, as many as the
// parser can find, and Files holds src for WriteDiagnostics.
func Format(filename string, src []byte) ([]byte, *Files, hcl.Diagnostics) {
	files := newFiles(filename)
	files.add(filename, src)
	if _, diags := parseConfig(src, filename); diags.HasErrors() {
		return nil, files, diags
	}
	out := hclwrite.Format(src)
	// hclwrite keeps what it does not understand, blank space at the end
	// too: the file ends in exactly one newline, like gofmt's, and a file of
	// blank space only becomes empty (formatting " " gave " \n", and that
	// "\n": not a fixed point, found by FuzzFormat).
	out = bytes.TrimRight(out, " \t\r\n")
	if len(out) > 0 {
		out = append(out, '\n')
	}
	return out, files, nil
}
