package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kiln-build/kiln/builder"
	"github.com/kiln-build/kiln/layers"
)

// fakeCache fills a cache directory the way builds do: one base entry (as
// base.Prepare writes it) and a chain of two layers of image "web" stored
// by package layers from a real tree; the base and the first layer were
// last used 40 days ago.
func fakeCache(t *testing.T) (dir string, keys []string) {
	dir = t.TempDir()
	entry := filepath.Join(dir, "bases", "0123456789abcdef01234567")
	require.NoError(t, os.MkdirAll(filepath.Join(entry, "tree", "etc"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(entry, "tree", "etc", "hostname"), []byte("x\n"), 0o644))
	meta, _ := json.Marshal(map[string]any{"format": "debian-v1", "created": time.Now().Add(-50 * 24 * time.Hour),
		"inputs": map[string]any{"Suite": "bookworm", "Variant": "minbase", "Arch": "amd64"}})
	require.NoError(t, os.WriteFile(filepath.Join(entry, "meta.json"), meta, 0o644))

	store := layers.Open(builder.LayersDir(dir))
	tree := t.TempDir()
	before, err := layers.Scan(tree)
	require.NoError(t, err)
	parent := layers.Root("base")
	for i, name := range []string{"nginx", "config"} {
		require.NoError(t, os.WriteFile(filepath.Join(tree, name), make([]byte, 3000), 0o644))
		after, err := layers.Scan(tree)
		require.NoError(t, err)
		key := layers.Step{Script: []byte(name)}.Key(parent)
		_, err = store.Commit(layers.Meta{Key: key, Parent: parent, Depth: i, Step: name, Image: "web"}, tree, before, after, false)
		require.NoError(t, err)
		keys = append(keys, key)
		parent, before = key, after
	}
	old := time.Now().Add(-40 * 24 * time.Hour)
	require.NoError(t, os.Chtimes(entry, old, old))
	require.NoError(t, os.Chtimes(filepath.Join(builder.LayersDir(dir), keys[0]), old, old))
	return dir, keys
}

// kiln cache ls lists bases and layers with key, image, step, size and
// use; kiln cache prune --keep-days removes what was not used since, and
// the layer whose parent went with it; --dry-run removes nothing.
func TestCacheLsAndPrune(t *testing.T) {
	dir, keys := fakeCache(t)

	code, out, errOut := runKiln(t, "cache", "ls", "--cache", dir)
	require.Equal(t, 0, code, errOut)
	require.Regexp(t, `base\s+0123456789ab\s+debian bookworm minbase amd64\s+-\s+\S+ \S+\s+50d\s+40d ago`, out)
	require.Regexp(t, `layer\s+`+keys[0][:12]+`\s+web\s+1 nginx\s+`, out)
	require.Regexp(t, `layer\s+`+keys[1][:12]+`\s+web\s+2 config\s+.*\s+0s ago`, out)
	require.Contains(t, out, "1 base(s), 2 layer(s)")

	code, out, errOut = runKiln(t, "cache", "ls", "--cache", dir, "--json")
	require.Equal(t, 0, code, errOut)
	var items []cacheItem
	require.NoError(t, json.Unmarshal([]byte(out), &items))
	require.Len(t, items, 3)
	require.Equal(t, "config", items[2].Step)
	require.Equal(t, 1, items[2].Depth)
	require.Positive(t, items[2].Size)

	code, out, errOut = runKiln(t, "cache", "prune", "--cache", dir, "--keep-days", "30", "--dry-run")
	require.Equal(t, 0, code, errOut)
	require.Contains(t, out, "would remove:")
	require.Contains(t, out, "1 base(s), 2 layer(s)", "the young layer goes with its parent")
	code, out, _ = runKiln(t, "cache", "ls", "--cache", dir)
	require.Equal(t, 0, code)
	require.Contains(t, out, "1 base(s), 2 layer(s)", "a dry run removes nothing")

	code, out, errOut = runKiln(t, "cache", "prune", "--cache", dir, "--keep-days", "45", "--json")
	require.Equal(t, 0, code, errOut)
	require.JSONEq(t, `{"dry_run": false, "removed": []}`, out)

	code, out, errOut = runKiln(t, "cache", "prune", "--cache", dir, "--keep-days", "30")
	require.Equal(t, 0, code, errOut)
	require.Contains(t, out, "removed:")
	code, out, _ = runKiln(t, "cache", "ls", "--cache", dir)
	require.Equal(t, 0, code)
	require.Equal(t, "nothing cached in "+dir+"\n", out)

	code, _, errOut = runKiln(t, "cache", "prune", "--cache", dir, "--keep-days", "-1")
	require.Equal(t, 2, code)
	require.Contains(t, errOut, "--keep-days must be 0 or more")
	code, _, errOut = runKiln(t, "cache", "rm")
	require.Equal(t, 2, code)
	require.Contains(t, errOut, `unknown subcommand "rm"`)
	code, _, errOut = runKiln(t, "cache", "ls", "extra")
	require.Equal(t, 2, code)
	require.Contains(t, errOut, "takes no arguments")
}
