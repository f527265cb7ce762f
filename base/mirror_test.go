package base

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

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
