package base

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestHostMirrorDeb822(t *testing.T) {
	dir := t.TempDir()
	AptSourcesList, AptSourcesDir = filepath.Join(dir, "none"), dir
	t.Cleanup(func() { AptSourcesList, AptSourcesDir = "/etc/apt/sources.list", "/etc/apt/sources.list.d" })
	require.NoError(t, os.WriteFile(filepath.Join(dir, "debian.sources"), []byte(`Types: deb
URIs: http://security.example/debian-security
Suites: bookworm-security
Components: main

Types: deb-src
URIs: http://src.example/debian
Suites: bookworm

Types: deb
# a comment
URIs: http://archive.example/debian/
Suites: bookworm bookworm-updates
Components: main
`), 0o644))
	m, err := HostMirror()
	require.NoError(t, err)
	require.Equal(t, "http://archive.example/debian", m)
}

func TestHostMirrorOneLine(t *testing.T) {
	dir := t.TempDir()
	list := filepath.Join(dir, "sources.list")
	AptSourcesList, AptSourcesDir = list, filepath.Join(dir, "d")
	t.Cleanup(func() { AptSourcesList, AptSourcesDir = "/etc/apt/sources.list", "/etc/apt/sources.list.d" })
	require.NoError(t, os.WriteFile(list, []byte("# deb http://old.example/debian bookworm main\ndeb http://sec.example/ bookworm-security main\ndeb [arch=amd64 signed-by=/k.gpg] http://mirror.example/debian bookworm main contrib\n"), 0o644))
	m, err := HostMirror()
	require.NoError(t, err)
	require.Equal(t, "http://mirror.example/debian", m)

	require.NoError(t, os.WriteFile(list, []byte("deb http://sec.example/ bookworm-security main\n"), 0o644))
	_, err = HostMirror()
	require.ErrorContains(t, err, "set `mirror` in the recipe")
}

func TestCacheKeyDependsOnInputs(t *testing.T) {
	a := Debian{Suite: "bookworm", Mirror: "http://m/debian", Variant: "minbase", Arch: "amd64", Components: []string{"main"}, Packages: []string{"a", "b"}}
	b := a
	b.Packages = []string{"a", "c"}
	require.NotEqual(t, cacheKey(a), cacheKey(b))
	require.Equal(t, cacheKey(a), cacheKey(a))
	require.Equal(t, []string{"a", "b"}, sortedUnique([]string{"b", "a", "b", ""}))
}

func TestSetupFilesChangeTheKeyAndGoInBeforeThePackages(t *testing.T) {
	a := Debian{Suite: "trixie", Mirror: "http://m/debian", Variant: "minbase", Arch: "amd64", Components: []string{"main"}, Packages: []string{"a"}}
	b := a
	b.Setup = []SetupFile{{Path: "/etc/initramfs-tools/conf.d/kiln", Data: "MODULES=list\n"}}
	require.NotEqual(t, cacheKey(a), cacheKey(b))

	args := mmdebstrapArgs(a, "/t/tree", "")
	require.NotContains(t, strings.Join(args, " "), "--essential-hook")
	args = mmdebstrapArgs(b, "/t/tree", "/t/tree.setup")
	require.Contains(t, args, `--essential-hook=tar -C /t/tree.setup -c . | tar -C "$1" -x --no-overwrite-dir`)
	require.Equal(t, []string{"trixie", "/t/tree", "http://m/debian"}, args[len(args)-3:])

	dir := t.TempDir()
	require.NoError(t, writeSetup(dir, []SetupFile{b.Setup[0], {Path: "/etc/initramfs-tools/hooks/kiln", Data: "#!/bin/sh\n", Mode: 0o755}}))
	data, err := os.ReadFile(filepath.Join(dir, "etc/initramfs-tools/conf.d/kiln"))
	require.NoError(t, err)
	require.Equal(t, "MODULES=list\n", string(data))
	fi, err := os.Stat(filepath.Join(dir, "etc/initramfs-tools/hooks/kiln"))
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o755), fi.Mode().Perm())
	for _, bad := range []string{"etc/x", "/etc/../x", "/"} {
		require.ErrorContains(t, writeSetup(dir, []SetupFile{{Path: bad}}), "clean absolute path")
	}
}

func TestReleaseDate(t *testing.T) {
	signed := "-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA512\n\nOrigin: Debian\nSuite: stable\nDate: Sat, 06 Dec 2026 08:17:29 UTC\nValid-Until: x\n"
	require.Equal(t, time.Date(2026, 12, 6, 8, 17, 29, 0, time.UTC), releaseDate([]byte(signed)))
	require.Equal(t, time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), releaseDate([]byte("Date: Fri, 2 Jan 2026 04:04:05 +0100\n")))
	require.True(t, releaseDate([]byte("Origin: x\n")).IsZero())
	require.True(t, releaseDate([]byte("Date: yesterday\n")).IsZero())
}

// The base remembers when the archive published what it was bootstrapped
// from: from the InRelease file it read, from the cache entry when the
// archive is unreachable, and from the InRelease file again for a cache
// entry older than that record.
func TestPrepareRecordsTheReleaseDate(t *testing.T) {
	mirror := t.TempDir()
	release := filepath.Join(mirror, "dists", "bookworm", "InRelease")
	require.NoError(t, os.MkdirAll(filepath.Dir(release), 0o755))
	require.NoError(t, os.WriteFile(release, []byte("Origin: Debian\nDate: Sat, 06 Dec 2026 08:17:29 UTC\n"), 0o644))
	fake := filepath.Join(t.TempDir(), "unshare")
	// Stands for unshare + mmdebstrap: the tree is the next-to-last argument.
	require.NoError(t, os.WriteFile(fake, []byte("#!/bin/sh\neval tree=\\${$(($# - 1))}\nmkdir -p \"$tree/etc\" && echo base > \"$tree/etc/hostname\"\n"), 0o755))
	old := UnshareCmd
	UnshareCmd = fake
	t.Cleanup(func() { UnshareCmd = old })

	cache := t.TempDir()
	d := Debian{Suite: "bookworm", Mirror: "file://" + mirror, Variant: "minbase", Arch: "amd64", Components: []string{"main"}}
	want := time.Date(2026, 12, 6, 8, 17, 29, 0, time.UTC)
	prepare := func() *Result {
		res, err := Prepare(context.Background(), d, filepath.Join(t.TempDir(), "tree"), Options{CacheDir: cache})
		require.NoError(t, err)
		return res
	}
	res := prepare()
	require.False(t, res.CacheHit)
	require.Equal(t, want, res.ReleaseDate)
	require.Equal(t, "file://"+release, res.ReleaseURL)
	require.True(t, prepare().CacheHit)

	require.NoError(t, os.Rename(release, release+".away"))
	res = prepare()
	require.True(t, res.CacheHit)
	require.Equal(t, want, res.ReleaseDate, "from the cache entry")
	require.Equal(t, "file://"+release, res.ReleaseURL)

	// An entry written before Kiln recorded the date.
	require.NoError(t, os.Rename(release+".away", release))
	metaPath := filepath.Join(cache, "bases", res.CacheKey, "meta.json")
	data, err := os.ReadFile(metaPath)
	require.NoError(t, err)
	var meta map[string]any
	require.NoError(t, json.Unmarshal(data, &meta))
	delete(meta, "release_date")
	data, _ = json.Marshal(meta)
	require.NoError(t, os.WriteFile(metaPath, data, 0o644))
	res = prepare()
	require.True(t, res.CacheHit)
	require.Equal(t, want, res.ReleaseDate, "the InRelease file the entry was made from")
}
