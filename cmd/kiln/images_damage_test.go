package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kiln-build/kiln/catalog"
	"github.com/kiln-build/kiln/manifest"
)

// A catalog with one corrupt build lists the others as usual and names the
// damaged one with its reason, exit code 0 and a warning; --json marks it.
// Wildcards never pick it, naming it says what is wrong, share refuses to
// change it, rm removes it, and check --repair recreates a damaged
// catalog.json from the manifest.
func TestImagesListNamesDamagedBuilds(t *testing.T) {
	root := t.TempDir()
	created := time.Now().UTC().Truncate(time.Second)
	for range 4 {
		fakeBuild(t, root, "web", "1.0.0", created, manifest.Catalog{Visibility: catalog.Shared, SharedWith: []string{"alice"}})
	}
	fakeBuild(t, root, "db", "1.0.0", created, manifest.Catalog{})
	b2 := filepath.Join(root, "web", "1.0.0", "2")
	b3 := filepath.Join(root, "web", "1.0.0", "3")
	data, err := os.ReadFile(filepath.Join(b2, catalog.StateFile))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(b2, catalog.StateFile), data[:10], 0o644))
	data, err = os.ReadFile(filepath.Join(b3, manifest.FileName))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(b3, manifest.FileName), []byte(strings.Replace(string(data), `"schema_version":1`, `"schema_version":7`, 1)), 0o644))

	code, out, errOut := runKiln(t, "images", "list", "--images", root)
	require.Equal(t, 0, code, errOut)
	assert.Contains(t, errOut, "warning: 2 damaged build(s) listed as damaged; kiln images check")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	require.Len(t, lines, 6, out)
	assert.Regexp(t, `^db\s+1\.0\.0\s+1\s+\d{4}-`, lines[1])
	assert.Regexp(t, `^web\s+1\.0\.0\s+1\s+.*shared \(alice\)`, lines[2])
	assert.Regexp(t, `^web\s+1\.0\.0\s+2\s+DAMAGED: catalog\.json: unexpected end of JSON input`, lines[3])
	assert.Regexp(t, `^web\s+1\.0\.0\s+3\s+DAMAGED: manifest\.json: unsupported manifest schema version 7`, lines[4])
	assert.Regexp(t, `^web\s+1\.0\.0\s+4\s+`, lines[5])

	items := listJSON(t, root)
	require.Equal(t, []string{"db/1.0.0/1", "web/1.0.0/1", "web/1.0.0/2", "web/1.0.0/3", "web/1.0.0/4"}, itemIDs(items))
	for i, want := range []string{"ok", "ok", "damaged", "damaged", "ok"} {
		assert.Equal(t, want, items[i].Status, items[i].ID)
	}
	assert.Equal(t, "catalog.json: unexpected end of JSON input", items[2].Damage)
	assert.Nil(t, items[2].Created)
	assert.Equal(t, "shared", items[4].Visibility)

	code, out, _ = runKiln(t, "images", "show", "--images", root, "web")
	require.Equal(t, 0, code)
	assert.True(t, strings.HasPrefix(out, "web/1.0.0/4\n"), out)
	code, _, errOut = runKiln(t, "images", "show", "--images", root, "web@1.0.0/2")
	assert.Equal(t, 1, code)
	assert.Contains(t, errOut, "web/1.0.0/2 is damaged: catalog.json: unexpected end of JSON input")
	code, _, errOut = runKiln(t, "images", "share", "--images", root, "web@1.0.0", "--add", "bob")
	assert.Equal(t, 1, code)
	assert.Contains(t, errOut, "web/1.0.0/2 is damaged (catalog.json: unexpected end of JSON input) and is not changed")
	code, _, errOut = runKiln(t, "images", "copy", "--images", root, "web@1.0.0/3", "--to", t.TempDir())
	assert.Equal(t, 1, code)
	assert.Contains(t, errOut, "web/1.0.0/3 is damaged")

	code, out, _ = runKiln(t, "images", "check", "--images", root)
	assert.Equal(t, 1, code)
	assert.Contains(t, out, "damaged: web/1.0.0/2: catalog.json: unexpected end of JSON input (recreate it from manifest.json's catalog block: visibility shared")
	assert.Contains(t, out, "damaged: web/1.0.0/3: manifest.json: unsupported manifest schema version 7")
	assert.Contains(t, out, "5 build(s) checked, 2 problem(s) (0 repaired); 1 can be repaired with --repair")
	code, out, _ = runKiln(t, "images", "check", "--repair", "--images", root)
	assert.Equal(t, 1, code, "the manifest cannot be repaired")
	assert.Contains(t, out, "(repaired: recreate it from manifest.json")
	code, out, errOut = runKiln(t, "images", "rm", "--images", root, "web@1.0.0/3")
	require.Equal(t, 0, code, errOut)
	assert.Equal(t, "removed web/1.0.0/3\n", out)
	code, out, _ = runKiln(t, "images", "check", "--images", root)
	assert.Equal(t, 0, code, out)
	assert.Contains(t, out, "4 build(s) checked, no problems")
	items = listJSON(t, root)
	assert.Equal(t, []string{"db/1.0.0/1", "web/1.0.0/1", "web/1.0.0/2", "web/1.0.0/4"}, itemIDs(items))
	assert.Equal(t, []string{"alice"}, items[2].SharedWith, "repaired from the manifest's catalog block")
}

// kiln images check finds one changed byte in a published disk, says it
// cannot be repaired, and exits 1 with or without --repair; --json says
// the same.
func TestImagesCheckFindsAChangedByte(t *testing.T) {
	root := t.TempDir()
	fakeBuild(t, root, "web", "1.0.0", time.Now().UTC().Truncate(time.Second), manifest.Catalog{})
	code, out, _ := runKiln(t, "images", "check", "--images", root)
	require.Equal(t, 0, code, out)
	disk := filepath.Join(root, "web", "1.0.0", "1", "web.raw")
	f, err := os.OpenFile(disk, os.O_RDWR, 0)
	require.NoError(t, err)
	_, err = f.WriteAt([]byte{'D'}, 0) // "disk ..." becomes "Disk ..."
	require.NoError(t, err)
	require.NoError(t, f.Close())

	for _, repair := range []bool{false, true} {
		args := []string{"images", "check", "--images", root}
		if repair {
			args = append(args, "--repair")
		}
		code, out, _ = runKiln(t, args...)
		assert.Equal(t, 1, code, out)
		assert.Contains(t, out, "sha256-mismatch: web/1.0.0/1: web.raw has sha256 ")
		assert.Contains(t, out, "cannot be repaired")
	}
	code, out, _ = runKiln(t, "images", "check", "--json", "--images", root)
	assert.Equal(t, 1, code)
	var rep struct {
		OK       bool
		Problems []catalog.Problem
	}
	require.NoError(t, json.Unmarshal([]byte(out), &rep))
	assert.False(t, rep.OK)
	require.Len(t, rep.Problems, 1)
	assert.Equal(t, catalog.ProblemSHA256, rep.Problems[0].Kind)
	assert.Equal(t, disk, rep.Problems[0].Path)
	assert.False(t, rep.Problems[0].Fixable)
}

// Links inside the catalog that point out of it are never followed by rm,
// prune, copy or the sweep every command does: a precious directory outside
// the catalog, reachable through a link where an image, a version, a build,
// a file of a build, .trash or .staging belongs, keeps every file.
func TestImagesNeverFollowLinksOutOfTheCatalog(t *testing.T) {
	precious := t.TempDir()
	canaries := map[string]string{}
	for _, d := range []string{"image/1.0.0/1", "version/1", "build", "trash/x", "staging/build-123"} {
		p := filepath.Join(precious, d, "canary")
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		require.NoError(t, os.WriteFile(p, []byte("precious "+d), 0o644))
		canaries[p] = "precious " + d
	}
	file := filepath.Join(precious, "file")
	require.NoError(t, os.WriteFile(file, []byte("precious file"), 0o644))
	canaries[file] = "precious file"
	requireCanaries := func(what string) {
		t.Helper()
		for p, want := range canaries {
			got, err := os.ReadFile(p)
			require.NoError(t, err, "%s: %s is gone", what, p)
			require.Equal(t, want, string(got), what)
		}
		entries, _ := os.ReadDir(filepath.Join(precious, "build"))
		require.Len(t, entries, 1, "%s: nothing was written into a linked directory", what)
	}

	root := t.TempDir()
	created := time.Now().UTC().Truncate(time.Second)
	keep1 := manifest.Catalog{Lifecycle: &manifest.Lifecycle{KeepLast: 1}}
	for range 3 {
		fakeBuild(t, root, "web", "1.0.0", created, keep1)
	}
	// An image, a version and a build that are links out of the catalog,
	// and a link inside build 1.
	require.NoError(t, os.Symlink(filepath.Join(precious, "image"), filepath.Join(root, "evil")))
	require.NoError(t, os.Symlink(filepath.Join(precious, "version"), filepath.Join(root, "web", "2.0.0")))
	require.NoError(t, os.Symlink(filepath.Join(precious, "build"), filepath.Join(root, "web", "1.0.0", "9")))
	require.NoError(t, os.Symlink(file, filepath.Join(root, "web", "1.0.0", "1", "extra")))
	require.NoError(t, os.Symlink(filepath.Join(precious, "trash"), filepath.Join(root, ".trash")))

	assert.Equal(t, []string{"web/1.0.0/1", "web/1.0.0/2", "web/1.0.0/3"}, itemIDs(listJSON(t, root)))
	code, _, errOut := runKiln(t, "images", "list", "--images", root, "--name", "evil", "--json")
	require.Equal(t, 0, code, errOut)
	requireCanaries("list")

	// copy: build 1 holds a link, so it is not copied; nor into a catalog
	// whose image directory is a link out of it.
	code, _, errOut = runKiln(t, "images", "copy", "--images", root, "web@1.0.0/1", "--to", t.TempDir())
	assert.Equal(t, 1, code)
	assert.Contains(t, errOut, "extra: not a regular file; a build holds only files")
	dest := t.TempDir()
	require.NoError(t, os.Symlink(filepath.Join(precious, "build"), filepath.Join(dest, "web")))
	code, _, errOut = runKiln(t, "images", "copy", "--images", root, "web@1.0.0/2", "--to", dest)
	assert.Equal(t, 1, code)
	assert.Contains(t, errOut, "is a symbolic link")
	requireCanaries("copy")

	// rm through each link: nothing there is a build. rm of build 1 (with
	// the link inside) removes the build and only the link, not its target;
	// .trash is a link, so rm refuses rather than move data through it.
	for _, ref := range []string{"evil@1.0.0/1", "web@2.0.0/1", "web@1.0.0/9"} {
		code, _, errOut = runKiln(t, "images", "rm", "--images", root, ref)
		assert.Equal(t, 1, code, ref)
		assert.Contains(t, errOut, "no build of", ref)
	}
	code, _, errOut = runKiln(t, "images", "rm", "--images", root, "web@1.0.0/1")
	assert.Equal(t, 1, code)
	assert.Contains(t, errOut, ".trash is a symbolic link")
	requireCanaries("rm with .trash a link")
	require.NoError(t, os.Remove(filepath.Join(root, ".trash")))
	code, _, errOut = runKiln(t, "images", "rm", "--images", root, "web@1.0.0/1")
	require.Equal(t, 0, code, errOut)
	requireCanaries("rm")

	// prune: keep_last = 1 deletes build 2; no link is followed.
	code, out, errOut := runKiln(t, "images", "prune", "--images", root)
	require.Equal(t, 0, code, errOut)
	assert.Contains(t, out, "delete web/1.0.0/2")
	requireCanaries("prune")
	assert.Equal(t, []string{"web/1.0.0/3"}, itemIDs(listJSON(t, root)))

	// .staging as a link: a build never stages through it.
	require.NoError(t, os.RemoveAll(filepath.Join(root, ".staging")))
	require.NoError(t, os.Symlink(filepath.Join(precious, "staging"), filepath.Join(root, ".staging")))
	_, err := catalog.NewStaging(root)
	assert.ErrorContains(t, err, ".staging is a symbolic link")
	code, _, _ = runKiln(t, "images", "list", "--images", root)
	require.Equal(t, 0, code)
	requireCanaries("staging")

	code, out, _ = runKiln(t, "images", "check", "--images", root)
	assert.Equal(t, 1, code)
	for _, l := range []string{"evil", "2.0.0", "9", ".staging"} {
		assert.Contains(t, out, "symbolic link leaving the catalog", l)
	}
	assert.Equal(t, 4, strings.Count(out, "link: "), out)
}
