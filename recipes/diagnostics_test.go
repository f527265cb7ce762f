package recipes

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/stretchr/testify/require"
)

func TestWriteDiagnostics(t *testing.T) {
	r, files, diags := Load("testdata/errors/unknown_attribute.hcl", LoadOptions{Library: testLibrary})
	require.Nil(t, r)
	var b strings.Builder
	WriteDiagnostics(&b, files, diags, false)
	out := b.String()
	want := `testdata/errors/unknown_attribute.hcl:9:5: error: Unsupported argument
     9 |     sise = "2GiB" # ERROR: Unsupported argument
       |     ^^^^
  An argument named "sise" is not expected here.
`
	require.Contains(t, out, want)
	// Every diagnostic is rendered, not only the first, then the count.
	require.Equal(t, 3, strings.Count(out, ": error: Unsupported argument\n"))
	require.Contains(t, out, "testdata/errors/unknown_attribute.hcl:5:5: error")
	require.Contains(t, out, `Did you mean "mirror"?`)
	require.Contains(t, out, "testdata/errors/unknown_attribute.hcl:11:3: error")
	require.True(t, strings.HasSuffix(out, "\n3 errors, 0 warnings\n"), out)
	require.NotContains(t, out, "\x1b[", "no color unless asked")
	require.NotContains(t, out, "on testdata", "not HCL's default format")
}

func TestWriteDiagnosticsKinds(t *testing.T) {
	src := "image \"x\" {\n\tversion = \"1.0\"  # tab-indented\n  description = \"héllo wörld\"\n}\n"
	files := newFiles("r.hcl")
	files.add("r.hcl", []byte(src))
	rng := func(line, col, byteOff, endCol, endByte int) *hcl.Range {
		return &hcl.Range{Filename: "r.hcl", Start: hcl.Pos{Line: line, Column: col, Byte: byteOff}, End: hcl.Pos{Line: line, Column: endCol, Byte: endByte}}
	}
	diags := hcl.Diagnostics{
		{Severity: hcl.DiagError, Summary: "Invalid version", Detail: "Write \"1.0.0\".\nSecond line.", Subject: rng(2, 12, 23, 17, 28)},
		{Severity: hcl.DiagWarning, Summary: "Accented", Detail: "A warning.", Subject: rng(3, 17, 61, 30, 76)},
		{Severity: hcl.DiagError, Summary: "No subject", Detail: "Nothing to point at."},
		{Severity: hcl.DiagError, Summary: "Elsewhere", Detail: "A file we do not have.", Subject: &hcl.Range{Filename: "other.hcl", Start: hcl.Pos{Line: 7, Column: 2}}},
		{Severity: hcl.DiagError, Summary: "Past the end", Detail: "Line 99.", Subject: &hcl.Range{Filename: "r.hcl", Start: hcl.Pos{Line: 99, Column: 1}}},
		{Severity: hcl.DiagWarning, Summary: "Bad offsets", Detail: "Columns only.", Subject: &hcl.Range{Filename: "r.hcl", Start: hcl.Pos{Line: 3, Column: 3, Byte: 9999}, End: hcl.Pos{Line: 3, Column: 14, Byte: -1}}},
	}
	var b strings.Builder
	WriteDiagnostics(&b, files, diags, false)
	out := b.String()
	require.Contains(t, out, "r.hcl:2:12: error: Invalid version\n     2 | \tversion = \"1.0\"  # tab-indented\n       | \t          ^^^^^\n  Write \"1.0.0\".\n  Second line.\n")
	require.Contains(t, out, "r.hcl:3:17: warning: Accented\n     3 |   description = \"héllo wörld\"\n       |                 ^^^^^^^^^^^^^\n")
	require.Contains(t, out, "r.hcl: error: No subject\n  Nothing to point at.\n")
	require.Contains(t, out, "other.hcl:7:2: error: Elsewhere\n  A file we do not have.\n")
	require.Contains(t, out, "r.hcl:99:1: error: Past the end\n  Line 99.\n")
	require.Contains(t, out, "r.hcl:3:3: warning: Bad offsets\n     3 |   description = \"héllo wörld\"\n       |   ^^^^^^^^^^^\n")
	require.True(t, strings.HasSuffix(out, "\n4 errors, 2 warnings\n"), out)

	b.Reset()
	WriteDiagnostics(&b, nil, diags[:1], true)
	require.Contains(t, b.String(), "\x1b[1;31merror\x1b[0m")
	require.Contains(t, b.String(), "1 error, 0 warnings")

	b.Reset()
	WriteDiagnostics(&b, nil, nil, false)
	require.Empty(t, b.String())
}

func TestDiagnosticsJSON(t *testing.T) {
	_, _, diags := Load("testdata/errors/bad_firmware.hcl", LoadOptions{Library: testLibrary})
	js := DiagnosticsJSON(diags)
	require.Len(t, js, 2)
	require.Equal(t, JSONDiagnostic{Severity: "error", Summary: "Invalid firmware", Detail: diags[0].Detail,
		File: "testdata/errors/bad_firmware.hcl", Line: 5, Column: 16}, js[0])
	data, err := json.Marshal(js)
	require.NoError(t, err)
	require.Contains(t, string(data), `"severity":"error"`)
	require.Contains(t, string(data), `"line":5`)

	require.NotNil(t, DiagnosticsJSON(nil))
	require.Equal(t, JSONDiagnostic{Severity: "warning", Summary: "w"}, DiagnosticsJSON(hcl.Diagnostics{{Severity: hcl.DiagWarning, Summary: "w"}})[0])
}
