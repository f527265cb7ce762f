package dpkg

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

const status = `Package: libc6
Status: install ok installed
Priority: optional
Architecture: amd64
Multi-Arch: same
Source: glibc (2.36-9+deb12u14)
Version: 2.36-9+deb12u14
Maintainer: GNU Libc Maintainers <debian-glibc@lists.debian.org>
Description: GNU C Library: Shared libraries
 Contains the standard libraries.
Homepage: https://www.gnu.org/software/libc/libc.html

Package: removed
Status: deinstall ok config-files
Architecture: amd64
Version: 1.0

Package: attr
Status: install ok installed
Architecture: amd64
Source: attr
Version: 1:2.5.1-4
Maintainer: Guillem Jover <guillem@debian.org>
Conffiles:
 /etc/xattr.conf 743ca3f83ea263f1f56ad1f63f907bdb
 /etc/old.conf 00000000000000000000000000000000 obsolete
Description: utilities for manipulating filesystem extended attributes

Package: base-files
Status: install ok installed
Architecture: amd64
Version: 12.4+deb12u5
Maintainer: Santiago Vila <sanvila@debian.org>
`

func TestParseStatus(t *testing.T) {
	got := parseStatus([]byte(status))
	require.Len(t, got, 3, "a package that is not installed is left out")
	require.Equal(t, []string{"attr", "base-files", "libc6"}, []string{got[0].Name, got[1].Name, got[2].Name})
	require.Equal(t, Package{Name: "libc6", Version: "2.36-9+deb12u14", Arch: "amd64", Source: "glibc", SourceVersion: "2.36-9+deb12u14",
		Maintainer: "GNU Libc Maintainers <debian-glibc@lists.debian.org>", Homepage: "https://www.gnu.org/software/libc/libc.html"}, got[2])
	require.Equal(t, "attr", got[0].Source)
	require.Equal(t, "1:2.5.1-4", got[0].SourceVersion, "a Source without a version is the binary's version")
	require.Equal(t, map[string]string{"/etc/xattr.conf": "743ca3f83ea263f1f56ad1f63f907bdb", "/etc/old.conf": "00000000000000000000000000000000"}, got[0].Conffiles)
	require.Equal(t, "base-files", got[1].Source)
}

func TestFileSums(t *testing.T) {
	tree := t.TempDir()
	info := filepath.Join(tree, "var/lib/dpkg/info")
	require.NoError(t, os.MkdirAll(info, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(tree, "var/lib/dpkg/status"), []byte(status), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(info, "attr.md5sums"), []byte("d41d8cd98f00b204e9800998ecf8427e  usr/bin/getfattr\nbad line\n"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(info, "libc6:amd64.md5sums"), []byte("0123456789abcdef0123456789abcdef  lib/x86_64-linux-gnu/libc.so.6\n"), 0o644))
	sums, err := FileSums(tree)
	require.NoError(t, err)
	require.Equal(t, "d41d8cd98f00b204e9800998ecf8427e", sums["/usr/bin/getfattr"])
	require.Equal(t, "0123456789abcdef0123456789abcdef", sums["/lib/x86_64-linux-gnu/libc.so.6"])
	require.Equal(t, "743ca3f83ea263f1f56ad1f63f907bdb", sums["/etc/xattr.conf"])
	require.Len(t, sums, 4)

	_, err = Installed(t.TempDir())
	require.ErrorContains(t, err, "reading the package database")
}
