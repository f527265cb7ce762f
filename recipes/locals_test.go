package recipes

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// Locals may refer to each other in any order, and to variables; the image
// sees them as local.NAME. A local computed from a sensitive variable is
// sensitive (as in Terraform), and so is a component parameter.
func TestLocalsAndSensitivity(t *testing.T) {
	src := `variable "suite" {
  default = "trixie"
}
variable "key" {
  sensitive = true
  default   = "ssh-ed25519 AAAAC3Nza kiln@test"
}

locals {
  full    = "${local.name}-${local.version}"
  name    = "web-${var.suite}"
  version = "1.2.0"
}

locals {
  keys  = [var.key]
  count = length(local.keys)
}

image "locals" {
  version     = local.version
  description = local.full
  base "debian" {
    suite = var.suite
  }
  component "users" {
    version    = "1.x.x"
    parameters = { name = "admin", authorized_keys = local.keys }
  }
}
`
	r, _, diags := Parse("r.hcl", []byte(src), LoadOptions{Library: testLibrary})
	require.Empty(t, diags, "%s", diags)
	require.Equal(t, "1.2.0", r.Image.Version)
	require.Equal(t, "web-trixie-1.2.0", r.Image.Description)
	require.Equal(t, []Local{
		{Name: "full", Value: "web-trixie-1.2.0", Range: Range{"r.hcl", 10, 3}},
		{Name: "name", Value: "web-trixie", Range: Range{"r.hcl", 11, 3}},
		{Name: "version", Value: "1.2.0", Range: Range{"r.hcl", 12, 3}},
		{Name: "keys", Value: []any{"ssh-ed25519 AAAAC3Nza kiln@test"}, Sensitive: true, Range: Range{"r.hcl", 16, 3}},
		{Name: "count", Value: int64(1), Sensitive: true, Range: Range{"r.hcl", 17, 3}},
	}, r.Locals)
	require.Equal(t, map[string]bool{"authorized_keys": true}, r.Image.Components[0].Sensitive)
	require.Equal(t, []any{"ssh-ed25519 AAAAC3Nza kiln@test"}, r.Image.Components[0].Parameters["authorized_keys"],
		"the build still gets the value")
}

// A validation failure points at where the value came from: a -var, a
// KILN_VAR_, a line of a var file; a sensitive value's message is hidden.
func TestValidationPointsAtTheValue(t *testing.T) {
	dir := t.TempDir()
	src := `variable "suite" {
  default = "trixie"
  validation {
    condition     = contains(["bookworm", "trixie"], var.suite)
    error_message = "Use bookworm or trixie, not ${var.suite}."
  }
}
variable "token" {
  sensitive = true
  default   = "abcdef"
  validation {
    condition     = length(var.token) >= 6
    error_message = "The token ${var.token} is too short."
  }
}
image "v" {
  version = "1.0.0"
  base "debian" {
    suite = var.suite
  }
}
`
	varFile := writeFile(t, dir, "prod.hcl", "# production\nsuite = \"jessie\"\n")
	for _, tc := range []struct {
		opts         LoadOptions
		file         string
		line, column int
	}{
		{LoadOptions{Vars: []string{"suite=sid"}}, "<value for var.suite>", 1, 1},
		{LoadOptions{Env: []string{"KILN_VAR_suite=sid"}}, "<value for var.suite from KILN_VAR_suite>", 1, 1},
		{LoadOptions{VarFiles: []string{varFile}}, varFile, 2, 9},
	} {
		tc.opts.Library = testLibrary
		_, files, diags := Parse("r.hcl", []byte(src), tc.opts)
		require.Len(t, diags, 1, "%s", diags)
		d := diags[0]
		require.Equal(t, "Invalid value for variable", d.Summary)
		require.Equal(t, tc.file, d.Subject.Filename)
		require.Equal(t, tc.line, d.Subject.Start.Line)
		require.Equal(t, tc.column, d.Subject.Start.Column)
		require.Contains(t, d.Detail, "Use bookworm or trixie, not ")
		require.Contains(t, d.Detail, "fails the validation rule at r.hcl:3")
		_, ok := files.Source(tc.file)
		require.True(t, ok, "the value's text is quoted")
	}

	_, files, diags := Parse("r.hcl", []byte(src), LoadOptions{Library: testLibrary, Vars: []string{"token=abc"}})
	require.Len(t, diags, 1)
	require.Equal(t, "<value for var.token>", diags[0].Subject.Filename)
	require.Contains(t, diags[0].Detail, "hidden because it uses a sensitive value")
	require.NotContains(t, diags[0].Detail, "abc")
	_, ok := files.Source("<value for var.token>")
	require.False(t, ok, "a sensitive value's text is not kept for quoting")
}

// Precedence, lowest first: default, KILN_VAR_, *.auto.kilnvars.hcl and
// .json next to the recipe in lexical order, -var-file in order, -var.
// JSON var files set typed values.
func TestVarFilePrecedenceAndJSON(t *testing.T) {
	dir := t.TempDir()
	src := precedenceRecipe + `variable "e" {
  default = "default"
}
variable "ports" {
  type    = list(number)
  default = []
}
`
	recipe := writeFile(t, dir, "r.hcl", src)
	writeFile(t, dir, "1.auto.kilnvars.hcl", "b = \"auto1\"\nc = \"auto1\"\nd = \"auto1\"\ne = \"auto1\"\n")
	writeFile(t, dir, "2.auto.kilnvars.json", `{"c": "auto2-json", "d": "auto2-json", "e": "auto2-json", "ports": [80, 443]}`)
	writeFile(t, dir, "other.kilnvars.hcl", "a = \"never read\"\n")
	vf := writeFile(t, dir, "explicit.json", `{"d": "var-file", "e": "var-file"}`)
	r, _, diags := Load(recipe, LoadOptions{
		Library:  testLibrary,
		Env:      []string{"KILN_VAR_a=env", "KILN_VAR_b=env"},
		VarFiles: []string{vf},
		Vars:     []string{"e=flag"},
	})
	require.Empty(t, diags, "%s", diags)
	require.Equal(t, map[string]any{"a": "env", "b": "auto1", "c": "auto2-json", "d": "var-file", "e": "flag",
		"ports": []any{int64(80), int64(443)}}, r.Variables)
	sources := map[string]string{}
	for _, v := range r.Declared {
		sources[v.Name] = v.Source
	}
	require.Equal(t, map[string]string{
		"a": "KILN_VAR_a", "b": filepath.Join(dir, "1.auto.kilnvars.hcl") + ":1", "c": filepath.Join(dir, "2.auto.kilnvars.json") + ":1",
		"d": "-var-file " + vf + ":1", "e": "-var", "ports": filepath.Join(dir, "2.auto.kilnvars.json") + ":1",
	}, sources)
	require.Equal(t, AutoVarFiles(recipe), []string{filepath.Join(dir, "1.auto.kilnvars.hcl"), filepath.Join(dir, "2.auto.kilnvars.json")})

	// Parse reads no auto files: only Load does.
	r, _, diags = Parse(recipe, []byte(src), LoadOptions{Library: testLibrary})
	require.Empty(t, diags)
	require.Equal(t, "default", r.Variables["b"])

	// A JSON value of the wrong type is reported at its position; so is an
	// undeclared name, and a huge number.
	require.NoError(t, os.WriteFile(filepath.Join(dir, "2.auto.kilnvars.json"), []byte("{\n  \"ports\": [\"http\"],\n  \"nosuch\": 1,\n  \"a\": 1e99999\n}\n"), 0o644))
	_, _, diags = Load(recipe, LoadOptions{Library: testLibrary})
	var got []string
	for _, d := range diags {
		got = append(got, posOf(*d.Subject)+" "+d.Summary)
	}
	auto2 := filepath.Join(dir, "2.auto.kilnvars.json")
	require.Equal(t, []string{
		auto2 + ":2:12 Invalid value for variable",
		auto2 + ":3:3 Undeclared variable",
		auto2 + ":4:8 Number out of range",
	}, got)
}
