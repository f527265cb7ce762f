package builder

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/kiln-build/kiln/components"
	"github.com/kiln-build/kiln/manifest"
	"github.com/kiln-build/kiln/recipes"
	"github.com/stretchr/testify/require"
)

// fakeArchive is a file:// mirror with only the InRelease file of bookworm.
func fakeArchive(t *testing.T, release string) string {
	dir := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "dists", "bookworm"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "dists", "bookworm", "InRelease"), []byte(release), 0o644))
	return "file://" + dir
}

func writeRecipe(t *testing.T, dir, mirror, script string) *recipes.Recipe {
	require.NoError(t, os.WriteFile(filepath.Join(dir, "setup.sh"), []byte(script), 0o755))
	path := filepath.Join(dir, "r.hcl")
	require.NoError(t, os.WriteFile(path, []byte(`
variable "greeting" { default = "hello" }
image "inputs" {
  version = "1.0.0"
  base "debian" {
    suite  = "bookworm"
    mirror = "`+mirror+`"
  }
  build "shell" "setup" { script = "setup.sh" }
  test "shell" "ok" { inline = ["echo ${var.greeting}"] }
}
`), 0o644))
	r, _, diags := recipes.Load(path, recipes.LoadOptions{Library: components.Builtin()})
	require.False(t, diags.HasErrors(), diags.Error())
	return r
}

func TestInputsDigest(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	mirror := fakeArchive(t, "Suite: bookworm\nDate: 1\n")
	r := writeRecipe(t, dir, mirror, "#!/bin/sh\necho one\n")
	in, err := ResolveInputs(ctx, r, "", "1.2.3")
	require.NoError(t, err)
	d0 := in.Digest()
	require.Len(t, d0, 64)
	require.Contains(t, in.Files, "setup.sh")
	require.NotEmpty(t, in.Base.ReleaseSHA256)
	require.Contains(t, in.Base.Packages, "linux-image-cloud-amd64")

	again, err := ResolveInputs(ctx, r, "", "1.2.3")
	require.NoError(t, err)
	require.Equal(t, d0, again.Digest(), "same inputs, same digest")

	changed := map[string]func() *manifest.Inputs{
		"kiln version": func() *manifest.Inputs { in, _ := ResolveInputs(ctx, r, "", "1.2.4"); return in },
		"script": func() *manifest.Inputs {
			r2 := writeRecipe(t, t.TempDir(), mirror, "#!/bin/sh\necho two\n")
			in, _ := ResolveInputs(ctx, r2, "", "1.2.3")
			return in
		},
		"archive": func() *manifest.Inputs {
			r2 := writeRecipe(t, t.TempDir(), fakeArchive(t, "Suite: bookworm\nDate: 2\n"), "#!/bin/sh\necho one\n")
			in, _ := ResolveInputs(ctx, r2, "", "1.2.3")
			in.Base.Mirror = mirror // only the Release file differs
			return in
		},
		"variable": func() *manifest.Inputs {
			r2, _, diags := recipes.Load(r.Path, recipes.LoadOptions{Library: components.Builtin(), Vars: []string{"greeting=bye"}})
			require.False(t, diags.HasErrors())
			in, _ := ResolveInputs(ctx, r2, "", "1.2.3")
			return in
		},
		"components": func() *manifest.Inputs {
			in, _ := ResolveInputs(ctx, r, "", "1.2.3")
			in.Components = []string{"sha256:abc"}
			return in
		},
	}
	for what, f := range changed {
		in := f()
		require.NotNil(t, in, what)
		require.NotEqual(t, d0, in.Digest(), "a changed %s changes the digest", what)
	}
	// Moving the recipe's directory does not: script paths are relative.
	r3 := writeRecipe(t, t.TempDir(), mirror, "#!/bin/sh\necho one\n")
	in3, err := ResolveInputs(ctx, r3, "", "1.2.3")
	require.NoError(t, err)
	require.Equal(t, d0, in3.Digest())
}

func TestCheckUpToDate(t *testing.T) {
	ctx := context.Background()
	images := t.TempDir()
	mirror := fakeArchive(t, "Suite: bookworm\n")
	r := writeRecipe(t, t.TempDir(), mirror, "#!/bin/sh\n")

	res, err := CheckUpToDate(ctx, r, images, "1")
	require.NoError(t, err)
	require.False(t, res.UpToDate)
	require.Contains(t, res.Reason, "no build of inputs 1.0.0")

	publish := func(build int, digest string) {
		dir := filepath.Join(images, "inputs", "1.0.0", itoa(build))
		require.NoError(t, os.MkdirAll(dir, 0o755))
		data, _ := json.Marshal(manifest.Manifest{SchemaVersion: manifest.SchemaVersion, Name: "inputs", Version: "1.0.0", Build: build, InputsDigest: digest})
		require.NoError(t, os.WriteFile(filepath.Join(dir, "manifest.json"), data, 0o644))
	}
	publish(1, res.Digest)
	publish(2, "")
	res, err = CheckUpToDate(ctx, r, images, "1")
	require.NoError(t, err)
	require.False(t, res.UpToDate, "the newest build is what counts")
	require.Contains(t, res.Reason, "build 2 records no inputs digest")

	publish(3, res.Digest)
	res, err = CheckUpToDate(ctx, r, images, "1")
	require.NoError(t, err)
	require.True(t, res.UpToDate)
	require.Equal(t, 3, res.Newest.Build)

	res, err = CheckUpToDate(ctx, r, images, "2")
	require.NoError(t, err)
	require.False(t, res.UpToDate)
	require.Contains(t, res.Reason, "the inputs changed since build 3")

	// An unreachable archive: the inputs are unknown, which is an error.
	r2 := writeRecipe(t, t.TempDir(), "file:///nonexistent/archive", "#!/bin/sh\n")
	_, err = CheckUpToDate(ctx, r2, images, "1")
	require.True(t, errors.Is(err, ErrInputsUnknown), "%v", err)
}

func itoa(n int) string { return string(rune('0' + n)) }

// A sensitive variable changes the inputs digest, but its value is not in
// the inputs (which the manifest records), and the keyed hash that is uses
// the catalog's secret key: another catalog gives another hash.
func TestInputsSensitiveVariableIsKeyedHash(t *testing.T) {
	images := t.TempDir()
	r := &recipes.Recipe{SHA256: "abc", Variables: map[string]any{"password": "hunter2", "suite": "trixie"},
		Sensitive: map[string]bool{"password": true}}
	in, err := RecipeInputs(r, images, "1.0", "file:///m", "r")
	require.NoError(t, err)
	data, err := json.Marshal(in)
	require.NoError(t, err)
	require.NotContains(t, string(data), "hunter2")
	require.Equal(t, "trixie", in.Variables["suite"])
	require.Contains(t, in.Variables["password"], recipes.Redacted)
	again, err := RecipeInputs(r, images, "1.0", "file:///m", "r")
	require.NoError(t, err)
	require.Equal(t, in.Digest(), again.Digest(), "same catalog, same value: same digest")
	other, err := RecipeInputs(r, t.TempDir(), "1.0", "file:///m", "r")
	require.NoError(t, err)
	require.NotEqual(t, in.Variables["password"], other.Variables["password"], "the key is the catalog's secret")
	r.Variables["password"] = "hunter3"
	in2, err := RecipeInputs(r, images, "1.0", "file:///m", "r")
	require.NoError(t, err)
	require.NotEqual(t, in.Digest(), in2.Digest(), "changing a sensitive value changes the digest")
	_, err = RecipeInputs(r, "", "1.0", "file:///m", "r")
	require.ErrorContains(t, err, "no catalog directory")
}

// What a recipe's expressions read with file() and templatefile() is an
// input: changing the file changes the digest, so --if-changed rebuilds.
func TestInputsCoverFilesTheRecipeReads(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	mirror := fakeArchive(t, "Suite: bookworm\n")
	require.NoError(t, os.WriteFile(filepath.Join(dir, "motd.txt"), []byte("one\n"), 0o644))
	path := filepath.Join(dir, "r.hcl")
	require.NoError(t, os.WriteFile(path, []byte(`locals {
  motd = file("motd.txt")
}
image "reads" {
  version = "1.0.0"
  base "debian" {
    suite  = "bookworm"
    mirror = "`+mirror+`"
  }
  build "file" "motd" {
    destination = "/etc/motd"
    content     = local.motd
  }
}
`), 0o644))
	digest := func() (string, *manifest.Inputs) {
		r, _, diags := recipes.Load(path, recipes.LoadOptions{Library: components.Builtin()})
		require.False(t, diags.HasErrors(), diags.Error())
		in, err := ResolveInputs(ctx, r, "", "1")
		require.NoError(t, err)
		return in.Digest(), in
	}
	d1, in := digest()
	require.Contains(t, in.Files, "motd.txt")
	require.NoError(t, os.WriteFile(filepath.Join(dir, "motd.txt"), []byte("two\n"), 0o644))
	d2, _ := digest()
	require.NotEqual(t, d1, d2, "the file read by file() changed")
}

// A recipe that calls timestamp() is recorded as not reproducible in the
// manifest, and a component parameter computed from a sensitive variable
// is recorded redacted.
func TestManifestRecordsReproducibilityAndRedacts(t *testing.T) {
	r, _, diags := recipes.Parse("ts.hcl", []byte(`variable "key" {
  sensitive = true
  default   = "ssh-ed25519 AAAA secret"
}
image "ts" {
  version     = "1.0.0"
  description = "built ${timestamp()}"
  base "debian" {
    suite = "trixie"
  }
  component "users" {
    version    = "1.x.x"
    parameters = { name = "admin", authorized_keys = [var.key] }
  }
}
`), recipes.LoadOptions{Library: components.Builtin()})
	require.False(t, diags.HasErrors(), diags.Error())
	rec := recipeRecord(r)
	require.Equal(t, []string{"timestamp() in ts.hcl"}, rec.NotReproducible)
	require.Equal(t, recipes.Redacted, rec.Variables["key"])
	comps := manifestComponents(r.Image.Components)
	require.Equal(t, recipes.Redacted, comps[0].Parameters["authorized_keys"])
	require.Equal(t, "admin", comps[0].Parameters["name"])

	r, _, _ = recipes.Parse("ts.hcl", []byte(`image "ts" {
  version = "1.0.0"
  base "debian" {
    suite = "trixie"
  }
}
`), recipes.LoadOptions{Library: components.Builtin()})
	require.Empty(t, recipeRecord(r).NotReproducible)
}
