package recipes

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/stretchr/testify/require"
)

// writeComponent writes a component file NAME-VERSION.hcl into dir.
func writeComponent(t *testing.T, dir, name, version, body string) string {
	t.Helper()
	require.NoError(t, os.MkdirAll(dir, 0o755))
	p := filepath.Join(dir, name+"-"+version+".hcl")
	require.NoError(t, os.WriteFile(p, []byte(fmt.Sprintf("component %q {\n  version = %q\n%s}\n", name, version, body)), 0o644))
	return p
}

// recipeWith parses a recipe in dir whose image uses the given blocks, with
// component_paths = ["components"].
func recipeWith(t *testing.T, dir, blocks string) (*Recipe, hcl.Diagnostics, string) {
	t.Helper()
	src := "kiln { component_paths = [\"components\"] }\nimage \"c\" {\n  version = \"1.0.0\"\n  base \"debian\" { suite = \"bookworm\" }\n" + blocks + "}\n"
	path := filepath.Join(dir, "r.hcl")
	require.NoError(t, os.WriteFile(path, []byte(src), 0o644))
	r, _, diags := Load(path, LoadOptions{Library: testLibrary})
	return r, diags, path
}

// Image Builder's wildcard rules: x fixes nothing from there to the right;
// the newest matching version wins; x in the middle is an error.
func TestComponentWildcardResolution(t *testing.T) {
	dir := t.TempDir()
	for _, v := range []string{"1.0.0", "1.2.0", "1.2.5", "1.10.1", "2.0.0", "2.1.0"} {
		writeComponent(t, filepath.Join(dir, "components"), "lib", v, "")
	}
	for _, c := range []struct{ constraint, want, err string }{
		{"1.2.0", "1.2.0", ""},
		{"1.2.x", "1.2.5", ""},
		{"1.x.x", "1.10.1", ""},
		{"2.x.x", "2.1.0", ""},
		{"x.x.x", "2.1.0", ""},
		{"X.X.X", "2.1.0", ""},
		{"1.0.x", "1.0.0", ""},
		{"1.3.x", "", "Unresolvable component version"},
		{"3.x.x", "", "Unresolvable component version"},
		{"1.2.4", "", "Unresolvable component version"},
		{"1.x.0", "", "Invalid version constraint"},
		{"x.2.x", "", "Invalid version constraint"},
		{"1.2", "", "Invalid version constraint"},
		{"01.x.x", "", "Invalid version constraint"},
		{"latest", "", "Invalid version constraint"},
	} {
		t.Run(c.constraint, func(t *testing.T) {
			r, diags, path := recipeWith(t, dir, fmt.Sprintf("  component \"lib\" {\n    version = %q\n  }\n", c.constraint))
			if c.err == "" {
				require.False(t, diags.HasErrors(), "%v", diags)
				require.Len(t, r.Image.Components, 1)
				require.Equal(t, c.want, r.Image.Components[0].Version)
				require.Equal(t, c.constraint, r.Image.Components[0].Constraint)
				return
			}
			require.Len(t, diags, 1, "%v", diags)
			require.Equal(t, c.err, diags[0].Summary)
			require.Equal(t, path, diags[0].Subject.Filename)
			require.Equal(t, 6, diags[0].Subject.Start.Line, "points at the version attribute")
			require.Equal(t, 15, diags[0].Subject.Start.Column)
		})
	}
}

const paramsComponent = `
  parameter "port" {
    type    = number
    default = 80
  }
  parameter "name" {
    type    = string
    pattern = "^[a-z]+$"
  }
  parameter "mode" {
    type    = string
    default = "fast"
    allowed = ["fast", "safe"]
  }
  parameter "enabled" {
    type    = bool
    default = true
  }
  parameter "packages" {
    type    = list(string)
    default = []
  }
  build "shell" "show" {
    inline = ["echo ${param.name}:${param.port}:${param.mode}:${param.enabled}:${join(",", param.packages)}"]
  }
`

// Each parameter mistake is reported at the attribute at fault, with its
// line, column and a message that says what to do.
func TestComponentParameterErrors(t *testing.T) {
	dir := t.TempDir()
	writeComponent(t, filepath.Join(dir, "components"), "app", "1.0.0", paramsComponent)
	for _, c := range []struct {
		params        string
		summary       string
		line, col     int
		detailContent string
	}{
		{`{ name = "web", colour = "red" }`, "Unknown component parameter", 7, 34, `has no parameter "colour"`},
		{`{ name = "web", prot = 8080 }`, "Unknown component parameter", 7, 34, `Did you mean "port"?`},
		{`{ name = "web", port = "eighty" }`, "Incorrect parameter type", 7, 41, `"port" of component "app" is of type number`},
		{`{ name = "web", enabled = "maybe" }`, "Incorrect parameter type", 7, 44, "of type bool"},
		{`{ name = "web", packages = "nginx" }`, "Incorrect parameter type", 7, 45, "of type list(string)"},
		{`{ name = "Web1" }`, "Invalid parameter value", 7, 27, "does not match the pattern ^[a-z]+$"},
		{`{ name = "web", mode = "slow" }`, "Invalid parameter value", 7, 41, `Allowed values: "fast", "safe"`},
		{`{ port = 8080 }`, "Missing component parameter", 5, 3, `needs parameter "name"`},
	} {
		t.Run(c.summary+c.params, func(t *testing.T) {
			_, diags, path := recipeWith(t, dir, fmt.Sprintf("  component \"app\" {\n    version    = \"1.x.x\"\n    parameters = %s\n  }\n", c.params))
			require.Len(t, diags, 1, "%v", diags)
			d := diags[0]
			require.Equal(t, c.summary, d.Summary)
			require.Equal(t, path, d.Subject.Filename)
			require.Equal(t, c.line, d.Subject.Start.Line, d.Detail)
			require.Equal(t, c.col, d.Subject.Start.Column, d.Detail)
			require.Contains(t, d.Detail, c.detailContent)
		})
	}

	// Valid parameters reach the steps and the manifest's record.
	r, diags, _ := recipeWith(t, dir, "  component \"app\" {\n    version    = \"1.0.0\"\n    parameters = { name = \"web\", port = 8080, packages = [\"a\", \"b\"] }\n  }\n")
	require.False(t, diags.HasErrors(), "%v", diags)
	require.Equal(t, []string{"echo web:8080:fast:true:a,b"}, r.Image.Build[0].Action.Shell.Inline)
	require.Equal(t, "app/show", r.Image.Build[0].Name)
	require.Equal(t, "app", r.Image.Build[0].Component)
	require.Equal(t, map[string]any{"name": "web", "port": int64(8080), "mode": "fast", "enabled": true, "packages": []any{"a", "b"}}, r.Image.Components[0].Parameters)
}

// Every built-in component parses, and can be used with only its required
// parameters; the recipe's components override nothing silently.
func TestBuiltinLibrary(t *testing.T) {
	lib, diags := loadLibrary(testLibrary, nil, hcl.Range{}, nil)
	require.False(t, diags.HasErrors(), "%v", diags)
	want := []string{"apt-packages", "cloud-init-nocloud", "qemu-guest-agent", "serial-console", "sshd-hardening", "system-settings", "users"}
	require.Equal(t, want, lib.names())

	dir := t.TempDir()
	blocks := `
  component "apt-packages" {
    version    = "1.x.x"
    parameters = { packages = ["curl"] }
  }
  component "users" {
    version    = "1.x.x"
    parameters = { name = "deploy", authorized_keys = ["ssh-ed25519 AAAAC3Nza me@host"], sudo = true }
  }
  component "cloud-init-nocloud" { version = "1.x.x" }
  component "qemu-guest-agent"   { version = "1.x.x" }
  component "system-settings" {
    version    = "1.x.x"
    parameters = { timezone = "Europe/Paris", hostname = "web1" }
  }
  component "sshd-hardening" {
    version    = "1.x.x"
    parameters = { allow_users = ["deploy"] }
  }
  component "serial-console"     { version = "1.x.x" }
`
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "components"), 0o755))
	r, diags, _ := recipeWith(t, dir, blocks)
	require.False(t, diags.HasErrors(), "%v", diags)
	require.Len(t, r.Image.Components, 7)
	for _, c := range r.Image.Components {
		require.Equal(t, SourceBuiltin, c.Source)
		require.Len(t, c.SHA256, 64)
	}
	digest := r.ComponentDigest()
	require.Len(t, digest, 7)
	require.Regexp(t, `^apt-packages@1\.0\.0\+sha256:[0-9a-f]{64}$`, digest[0])
	var hardening string
	for _, s := range r.Image.Build {
		if s.Name == "sshd-hardening/config" {
			hardening = string(s.Action.File.Content)
		}
	}
	require.Contains(t, hardening, "PermitRootLogin no\n")
	require.Contains(t, hardening, "AllowUsers deploy")

	// A recipe-local component with a built-in's name and version is an error;
	// a newer version adds to the library and wins under a wildcard.
	p := writeComponent(t, filepath.Join(dir, "components"), "serial-console", "1.0.0", "")
	_, diags, _ = recipeWith(t, dir, `  component "serial-console" { version = "1.x.x" }`+"\n")
	require.Len(t, diags, 1, "%v", diags)
	require.Equal(t, "Duplicate component version", diags[0].Summary)
	require.Equal(t, p, diags[0].Subject.Filename)
	require.NoError(t, os.Remove(p))
	p = writeComponent(t, filepath.Join(dir, "components"), "serial-console", "1.1.0", "")
	r, diags, _ = recipeWith(t, dir, `  component "serial-console" { version = "1.x.x" }`+"\n")
	require.False(t, diags.HasErrors(), "%v", diags)
	require.Equal(t, "1.1.0", r.Image.Components[0].Version)
	require.Equal(t, p, r.Image.Components[0].Source)
	r, diags, _ = recipeWith(t, dir, `  component "serial-console" { version = "1.0.x" }`+"\n")
	require.False(t, diags.HasErrors(), "%v", diags)
	require.Equal(t, SourceBuiltin, r.Image.Components[0].Source)
}

// A file source outside the declaring file's directory needs allow_outside;
// a template source is rendered with the parameters.
func TestFileSourceOutsideAndTemplate(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "recipe")
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "components", "files"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(root, "secret"), []byte("outside"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "components", "files", "t.tmpl"), []byte("port=${param.port}\n%{ for p in param.list }${p};%{ endfor }\n"), 0o644))
	require.NoError(t, os.Symlink(filepath.Join(root, "secret"), filepath.Join(dir, "components", "files", "link")))
	writeComponent(t, filepath.Join(dir, "components"), "tpl", "1.0.0", `
  parameter "port" {
    type = number
  }
  parameter "list" {
    type    = list(string)
    default = ["a", "b"]
  }
  build "file" "conf" {
    destination = "/etc/t.conf"
    source      = "files/t.tmpl"
    template    = true
  }
`)
	r, diags, _ := recipeWith(t, dir, `  component "tpl" {
    version    = "1.0.0"
    parameters = { port = 81 }
  }`+"\n")
	require.False(t, diags.HasErrors(), "%v", diags)
	require.Equal(t, "port=81\na;b;\n", string(r.Image.Build[0].Action.File.Content))
	digest := r.ComponentDigest()
	require.Regexp(t, `^tpl@1\.0\.0\+sha256:[0-9a-f]{64}\+files:[0-9a-f]{64}$`, digest[0])
	// Changing the template (not the component file) changes the digest.
	require.NoError(t, os.WriteFile(filepath.Join(dir, "components", "files", "t.tmpl"), []byte("port=${param.port}\n"), 0o644))
	r, diags, _ = recipeWith(t, dir, "  component \"tpl\" {\n    version    = \"1.0.0\"\n    parameters = { port = 81 }\n  }\n")
	require.False(t, diags.HasErrors(), "%v", diags)
	require.NotEqual(t, digest, r.ComponentDigest())
	require.Equal(t, strings.Split(digest[0], "+files:")[0], strings.Split(r.ComponentDigest()[0], "+files:")[0])

	for _, src := range []string{`"../secret"`, `"components/files/link"`} {
		_, diags, path := recipeWith(t, dir, "  build \"file\" \"x\" {\n    destination = \"/x\"\n    source      = "+src+"\n  }\n")
		require.Len(t, diags, 1, "%v", diags)
		require.Equal(t, "Source outside the directory", diags[0].Summary)
		require.Equal(t, path, diags[0].Subject.Filename)
		require.Equal(t, 7, diags[0].Subject.Start.Line)
		require.Contains(t, diags[0].Detail, "allow_outside = true")
		r, diags, _ = recipeWith(t, dir, "  build \"file\" \"x\" {\n    destination   = \"/x\"\n    source        = "+src+"\n    allow_outside = true\n  }\n")
		require.False(t, diags.HasErrors(), "%v", diags)
		require.Equal(t, "outside", string(r.Image.Build[0].Action.File.Content))
	}
}

// A script the digest cannot read is reported at its script argument, not
// hashed as empty content.
func TestFilesDigestReportsUnreadableScript(t *testing.T) {
	src := newDecoded("build", hcl.Range{Filename: "c.hcl"}, nil)
	missing := filepath.Join(t.TempDir(), "gone.sh")
	sum, diags := filesDigest([]*stepBlock{{
		Step: Step{Name: "c/s", Action: Action{Kind: KindShell, Shell: &Shell{Script: missing}}},
		src:  src,
	}}, nil)
	require.Empty(t, sum)
	require.Len(t, diags, 1)
	require.Equal(t, "Cannot read script", diags[0].Summary)
	require.Contains(t, diags[0].Detail, missing)
}
