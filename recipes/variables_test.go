package recipes

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/stretchr/testify/require"
)

const precedenceRecipe = `variable "a" {
  default = "default"
}
variable "b" {
  default = "default"
}
variable "c" {
  default = "default"
}
variable "d" {
  default = "default"
}

image "precedence" {
  version = "1.0.0"
  base "debian" { suite = "${var.a}-${var.b}-${var.c}-${var.d}" }
}
`

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	require.NoError(t, os.WriteFile(p, []byte(content), 0o644))
	return p
}

// Lowest first: default, KILN_VAR_, -var-file files in order, -var in order.
func TestVariablePrecedence(t *testing.T) {
	dir := t.TempDir()
	f1 := writeFile(t, dir, "1.hcl", "b = \"file1\"\nc = \"file1\"\nd = \"file1\"\n")
	f2 := writeFile(t, dir, "2.hcl", "c = \"file2\"\nd = \"file2\"\n")
	opts := LoadOptions{
		Library:  testLibrary,
		Env:      []string{"PATH=/bin", "KILN_VAR_a=env", "KILN_VAR_b=env", "KILN_VAR_c=env", "KILN_VAR_d=env", "KILN_VAR_unknown=ignored"},
		VarFiles: []string{f1, f2},
		Vars:     []string{"d=flag1", "d=flag2"},
	}
	r, _, diags := Parse(filepath.Join(dir, "r.hcl"), []byte(precedenceRecipe), opts)
	require.Empty(t, diags, "%s", diags)
	require.Equal(t, map[string]any{"a": "env", "b": "file1", "c": "file2", "d": "flag2"}, r.Variables)
	require.Equal(t, "env-file1-file2-flag2", r.Image.Base.Suite)

	r, _, diags = Parse(filepath.Join(dir, "r.hcl"), []byte(precedenceRecipe), LoadOptions{Library: testLibrary})
	require.Empty(t, diags)
	require.Equal(t, "default-default-default-default", r.Image.Base.Suite)
}

const typedRecipe = `variable "s" {
  type    = string
  default = "x"
}
variable "n" {
  type    = number
  default = 1
}
variable "b" {
  type    = bool
  default = false
}
variable "l" {
  type    = list(string)
  default = []
}
variable "m" {
  type    = map(string)
  default = {}
}
variable "any" {
  type    = any
  default = null
}
variable "untyped" {
  default = 0
}

image "typed" {
  version = "1.0.0"
  base "debian" { suite = "bookworm" }
}
`

// For -var and KILN_VAR_, string and untyped variables take the text as
// is; other types parse it as an HCL expression.
func TestVariableTextConversion(t *testing.T) {
	r, _, diags := Parse("r.hcl", []byte(typedRecipe), LoadOptions{
		Library: testLibrary,
		Env:     []string{"KILN_VAR_n=42", `KILN_VAR_l=["a", "b"]`},
		Vars: []string{
			`s=["not", "parsed"]`, "b=true", `m={ k = "v", n = 1 }`, `any={ x = [1] }`, "untyped=[1, 2]",
		},
	})
	require.Empty(t, diags, "%s", diags)
	require.Equal(t, map[string]any{
		"s":       `["not", "parsed"]`,
		"n":       int64(42),
		"b":       true,
		"l":       []any{"a", "b"},
		"m":       map[string]any{"k": "v", "n": "1"},
		"any":     map[string]any{"x": []any{int64(1)}},
		"untyped": "[1, 2]",
	}, r.Variables)
}

func TestVariableValueErrors(t *testing.T) {
	dir := t.TempDir()
	varFile := writeFile(t, dir, "bad.hcl", "n = \"lots\"\nnosuch = 1\nl = [\"ok\"]\n")
	r, files, diags := Parse("r.hcl", []byte(typedRecipe), LoadOptions{
		Library:  testLibrary,
		Env:      []string{"KILN_VAR_b=maybe", "KILN_VAR_nosuch=1"},
		VarFiles: []string{varFile, filepath.Join(dir, "missing.hcl")},
		Vars:     []string{"n=[", "m=1", "nosuch=x", "novalue", "=x"},
	})
	require.Nil(t, r)
	type diag struct{ file, summary string }
	var got []diag
	for _, d := range diags {
		require.NotNil(t, d.Subject, d.Summary)
		got = append(got, diag{d.Subject.Filename, d.Summary})
	}
	require.Equal(t, []diag{
		{"<value for var.b from KILN_VAR_b>", "Invalid value for variable"}, // "maybe" is not a bool literal
		{varFile, "Invalid value for variable"},
		{varFile, "Undeclared variable"},
		{filepath.Join(dir, "missing.hcl"), "Cannot read variables file"},
		{"<value for var.n>", "Invalid value for variable"},
		{"<value for var.m>", "Invalid value for variable"},
		{"<-var option>", "Undeclared variable"},
		{"<-var option #2>", "Invalid -var option"},
		{"<-var option #3>", "Invalid -var option"},
	}, got)

	// The var file's diagnostics point at the right lines.
	require.Equal(t, 1, diags[1].Subject.Start.Line)
	require.Equal(t, 2, diags[2].Subject.Start.Line)
	require.Contains(t, diags[3].Detail, "relative to the working directory")
	require.Contains(t, diags[5].Detail, "map(string)")
	// An undeclared -var points at its name, and the text is rendered.
	require.Contains(t, diags[6].Detail, `"nosuch"`)
	var b strings.Builder
	WriteDiagnostics(&b, files, diags, false)
	require.Contains(t, b.String(), "<-var option>:1:1: error: Undeclared variable\n     1 | nosuch=x\n       | ^^^^^^\n")
	require.Contains(t, b.String(), "<value for var.m>:1:1: error: Invalid value for variable\n     1 | 1\n")
	require.Contains(t, b.String(), "9 errors, 0 warnings\n")
}

func TestUndeclaredVariableSuggestion(t *testing.T) {
	_, _, diags := Parse("r.hcl", []byte(precedenceRecipe+`variable "suite" {
  default = "x"
}
`), LoadOptions{Library: testLibrary, Vars: []string{"suit=trixie"}})
	require.Len(t, diags, 1)
	require.Contains(t, diags[0].Detail, `Did you mean "suite"?`)
}

func TestRequiredVariable(t *testing.T) {
	src := []byte(`variable "release" {
  type = string
}
image "x" {
  version = var.release
  base "debian" { suite = "bookworm" }
}
`)
	r, _, diags := Parse("r.hcl", src, LoadOptions{Library: testLibrary})
	require.Nil(t, r)
	require.Len(t, diags, 1, "the unknown version is not reported again: %s", diags)
	require.Equal(t, "No value for required variable", diags[0].Summary)
	require.Equal(t, hcl.Pos{Line: 1, Column: 1, Byte: 0}, diags[0].Subject.Start)
	require.Contains(t, diags[0].Detail, "KILN_VAR_release")

	for _, opts := range []LoadOptions{
		{Library: testLibrary, Vars: []string{"release=1.2.3"}},
		{Library: testLibrary, Env: []string{"KILN_VAR_release=1.2.3"}},
	} {
		r, _, diags = Parse("r.hcl", src, opts)
		require.Empty(t, diags)
		require.Equal(t, "1.2.3", r.Image.Version)
	}

	// A value that fails the image's own checks is reported at the use.
	_, _, diags = Parse("r.hcl", src, LoadOptions{Library: testLibrary, Vars: []string{"release=1.2"}})
	require.Len(t, diags, 1)
	require.Equal(t, "Invalid version", diags[0].Summary)
	require.Equal(t, 5, diags[0].Subject.Start.Line)
}

// A var file holds only arguments; blocks and references are errors.
func TestVarFileErrors(t *testing.T) {
	dir := t.TempDir()
	f := writeFile(t, dir, "v.hcl", "a = var.b\nimage \"x\" {}\n")
	_, _, diags := Parse("r.hcl", []byte(precedenceRecipe), LoadOptions{Library: testLibrary, VarFiles: []string{f}})
	require.True(t, diags.HasErrors())
	lines := map[int]string{}
	for _, d := range diags {
		require.Equal(t, f, d.Subject.Filename)
		lines[d.Subject.Start.Line] = d.Summary
	}
	require.Equal(t, map[int]string{1: "Variables not allowed", 2: "Unexpected \"image\" block"}, lines)

	f = writeFile(t, dir, "syntax.hcl", "a = \n")
	_, _, diags = Parse("r.hcl", []byte(precedenceRecipe), LoadOptions{Library: testLibrary, VarFiles: []string{f}})
	require.Len(t, diags, 1)
	require.Equal(t, f, diags[0].Subject.Filename)
}

// Numbers of absurd magnitude are refused before they are evaluated: HCL
// would spend minutes turning them into text.
func TestHugeNumbers(t *testing.T) {
	dir := t.TempDir()
	f := writeFile(t, dir, "v.hcl", "n = 1e999999\nb = \"1e999999\"\n")
	_, _, diags := Parse("r.hcl", []byte(typedRecipe), LoadOptions{
		Library:  testLibrary,
		VarFiles: []string{f},
		Vars:     []string{"n=-1e99999999", `l=["1e-9999999"]`, "s=1e99999999", "untyped=1e9"},
		Env:      []string{"KILN_VAR_untyped=3E999999"},
	})
	var got []string
	for _, d := range diags {
		got = append(got, d.Subject.Filename+": "+d.Summary)
	}
	require.Equal(t, []string{
		"<value for var.untyped from KILN_VAR_untyped>: Number out of range",
		f + ": Number out of range",
		f + ": Number out of range",
		"<value for var.n>: Number out of range",
		"<value for var.l>: Number out of range",
		"<value for var.s>: Number out of range",
	}, got)
}

// A sensitive variable's value is in Variables (the build uses it) and
// redacted in PublicVariables (what the manifest, logs and --json see).
func TestSensitiveVariables(t *testing.T) {
	src := `variable "password" {
  sensitive = true
  default   = "hunter2"
}
variable "suite" { default = "trixie" }
image "s" {
  version = "1.0.0"
  base "debian" { suite = var.suite }
}
`
	r, _, diags := Parse(filepath.Join(t.TempDir(), "r.hcl"), []byte(src), LoadOptions{Library: testLibrary, Vars: []string{"password=s3cret"}})
	require.Empty(t, diags, "%s", diags)
	require.Equal(t, "s3cret", r.Variables["password"])
	require.Equal(t, map[string]bool{"password": true}, r.Sensitive)
	require.Equal(t, map[string]any{"password": Redacted, "suite": "trixie"}, r.PublicVariables())
}
