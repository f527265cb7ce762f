package base

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kiln-build/kiln/internal/livedir"
)

// cachedBase writes a cache entry for d, bootstrapped at created from an
// archive whose InRelease hashes to release, and last used at used.
func cachedBase(t *testing.T, cacheDir string, d Debian, release string, created, used time.Time) string {
	entry := filepath.Join(cacheDir, "bases", cacheKey(d))
	require.NoError(t, os.MkdirAll(filepath.Join(entry, "tree", "etc"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(entry, "tree", "etc", "os-release"), make([]byte, 10000), 0o644))
	data, _ := json.Marshal(cacheMeta{Format: cacheFormat, Inputs: d, ReleaseSHA256: release, Created: created})
	require.NoError(t, os.WriteFile(filepath.Join(entry, "meta.json"), data, 0o644))
	require.NoError(t, os.Chtimes(entry, used, used))
	return entry
}

// A cache hit reports when the base was bootstrapped and marks the entry
// used; ls lists the entries, the most recently used first; prune removes
// those not used since the cutoff and what a killed bootstrap left, under
// each entry's lock, and nothing on a dry run.
func TestBaseCacheUseListAndPrune(t *testing.T) {
	cacheDir, mirror := t.TempDir(), t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(mirror, "dists", "bookworm"), 0o755))
	inRelease := []byte("Origin: Debian\nSuite: bookworm\n")
	require.NoError(t, os.WriteFile(filepath.Join(mirror, "dists", "bookworm", "InRelease"), inRelease, 0o644))
	sum := sha256.Sum256(inRelease)
	release := hex.EncodeToString(sum[:])

	old := time.Now().Add(-40 * 24 * time.Hour).Truncate(time.Second)
	created := old.Add(-time.Hour).UTC()
	used := Debian{Suite: "bookworm", Mirror: "file://" + mirror, Variant: "minbase", Arch: "amd64", Components: []string{"main"}, Packages: []string{"a"}}
	stale := used
	stale.Packages = []string{"b"}
	usedEntry := cachedBase(t, cacheDir, used, release, created, old)
	staleEntry := cachedBase(t, cacheDir, stale, release, created, old)
	require.NoError(t, os.MkdirAll(staleEntry+".tmp", 0o755))
	orphanTmp := filepath.Join(cacheDir, "bases", "0123456789abcdef01234567.tmp")
	require.NoError(t, os.MkdirAll(orphanTmp, 0o755))

	dest := filepath.Join(t.TempDir(), "tree")
	res, err := Prepare(context.Background(), used, dest, Options{CacheDir: cacheDir})
	require.NoError(t, err)
	require.True(t, res.CacheHit)
	require.Equal(t, created, res.Bootstrapped.UTC())
	require.FileExists(t, filepath.Join(dest, "etc", "os-release"))

	es, err := CachedBases(cacheDir)
	require.NoError(t, err)
	require.Len(t, es, 2)
	require.Equal(t, usedEntry, es[0].Dir, "the base just used comes first")
	require.WithinDuration(t, time.Now(), es[0].LastUsed, time.Minute)
	require.Equal(t, []string{"b"}, es[1].Inputs.Packages)
	require.Equal(t, release, es[1].Release)
	require.GreaterOrEqual(t, es[1].Size, int64(10000))

	deadBootstrap := filepath.Join(cacheDir, "bases", bootstrapPrefix+"0123456789abcdef01234567-dead") // its bootstrap was killed: the lock is free
	require.NoError(t, os.MkdirAll(filepath.Join(deadBootstrap, "tree"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(deadBootstrap, livedir.LockFile), nil, 0o600))
	running, err := livedir.Create(filepath.Join(cacheDir, "bases"), bootstrapPrefix+"0123456789abcdef01234567-", 0o755) // a bootstrap at work
	require.NoError(t, err)
	defer running.Remove()
	cutoff := time.Now().Add(-30 * 24 * time.Hour)
	removed, err := PruneBases(cacheDir, cutoff, true)
	require.NoError(t, err)
	require.Len(t, removed, 1)
	require.DirExists(t, staleEntry, "a dry run removes nothing")
	require.DirExists(t, deadBootstrap, "a dry run removes nothing")

	removed, err = PruneBases(cacheDir, cutoff, false)
	require.NoError(t, err)
	require.Len(t, removed, 1)
	require.Equal(t, staleEntry, removed[0].Dir)
	require.NoDirExists(t, staleEntry)
	require.NoDirExists(t, staleEntry+".tmp")
	require.NoDirExists(t, orphanTmp)
	require.NoDirExists(t, deadBootstrap, "a killed bootstrap's live directory is swept")
	require.DirExists(t, running.Path, "a running bootstrap's is not")
	require.FileExists(t, staleEntry+".lock", "the lock file stays: a build may wait on it")
	require.DirExists(t, usedEntry)
}
