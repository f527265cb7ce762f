package base

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/kiln-build/kiln/internal/testutil"
)

// describe records what matters of every entry below root, one line each:
// type, permission bits with setuid/setgid/sticky, owner, size, symlink
// target or device number, file capabilities and which hard-link group a
// file belongs to.
func describe(t *testing.T, root string) []string {
	t.Helper()
	groups := map[uint64]string{}
	var out []string
	require.NoError(t, filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		require.NoError(t, err)
		rel, _ := filepath.Rel(root, p)
		if rel == "lost+found" || strings.HasPrefix(rel, "lost+found/") {
			return nil
		}
		var st unix.Stat_t
		require.NoError(t, unix.Lstat(p, &st))
		line := fmt.Sprintf("%s type=%o perm=%04o owner=%d:%d", rel, st.Mode&unix.S_IFMT, st.Mode&0o7777, st.Uid, st.Gid)
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFLNK:
			target, _ := os.Readlink(p)
			line += " -> " + target
		case unix.S_IFCHR, unix.S_IFBLK:
			line += fmt.Sprintf(" rdev=%d:%d", unix.Major(st.Rdev), unix.Minor(st.Rdev))
		case unix.S_IFREG:
			data, err := os.ReadFile(p)
			require.NoError(t, err)
			line += fmt.Sprintf(" content=%q", data)
			if st.Nlink > 1 {
				if g, ok := groups[st.Ino]; ok {
					line += " hardlink-of=" + g
				} else {
					groups[st.Ino] = rel
				}
			}
			buf := make([]byte, 64)
			if n, err := unix.Lgetxattr(p, "security.capability", buf); err == nil {
				line += fmt.Sprintf(" caps=%x", buf[:n])
			}
		}
		out = append(out, line)
		return nil
	}))
	sort.Strings(out)
	return out
}

// A tree written into ext4 by mke2fs -d and extracted again is the same
// tree: owners, special permission bits, symlinks (and their owners), hard
// links, device nodes in /dev, FIFOs and file capabilities survive.
func TestExtractExt4KeepsTheTree(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.Require(t, "mke2fs", "debugfs", "e2fsck", "setcap")
	src := filepath.Join(t.TempDir(), "src")
	for _, d := range []string{"etc", "usr/bin", "dev", "tmp", "home/user", "with space"} {
		require.NoError(t, os.MkdirAll(filepath.Join(src, d), 0o755))
	}
	write := func(p, content string, mode fs.FileMode, uid, gid int) {
		full := filepath.Join(src, p)
		require.NoError(t, os.WriteFile(full, []byte(content), 0o644))
		require.NoError(t, os.Chown(full, uid, gid))
		require.NoError(t, os.Chmod(full, mode))
	}
	write("etc/passwd", "root:x:0:0\n", 0o644, 0, 0)
	write("usr/bin/sudo", "sudo", 0o755|fs.ModeSetuid, 0, 0)
	write("usr/bin/wall", "wall", 0o755|fs.ModeSetgid, 0, 5)
	write("usr/bin/ping", "ping", 0o755, 0, 0)
	write("home/user/notes", "mine", 0o600, 1000, 1000)
	write("with space/a \"quoted\" name", "odd", 0o644, 0, 0)
	require.NoError(t, os.Chown(filepath.Join(src, "home/user"), 1000, 1000))
	require.NoError(t, os.Chmod(filepath.Join(src, "home/user"), 0o700))
	require.NoError(t, os.Chmod(filepath.Join(src, "tmp"), 0o777|fs.ModeSticky))
	require.NoError(t, os.Link(filepath.Join(src, "usr/bin/sudo"), filepath.Join(src, "usr/bin/sudoedit")))
	require.NoError(t, os.Symlink("sudo", filepath.Join(src, "usr/bin/link")))
	require.NoError(t, os.Symlink("/", filepath.Join(src, "escape")))
	require.NoError(t, os.Symlink("../../..", filepath.Join(src, "etc/up")))
	require.NoError(t, os.Lchown(filepath.Join(src, "usr/bin/link"), 1000, 1000))
	require.NoError(t, unix.Mknod(filepath.Join(src, "dev/null"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))))
	require.NoError(t, unix.Mknod(filepath.Join(src, "dev/sda"), unix.S_IFBLK|0o660, int(unix.Mkdev(8, 0))))
	require.NoError(t, os.Chown(filepath.Join(src, "dev/sda"), 0, 6))
	require.NoError(t, unix.Mkfifo(filepath.Join(src, "dev/initctl"), 0o600))
	// A device node outside /dev is not recreated.
	require.NoError(t, unix.Mknod(filepath.Join(src, "tmp/hostdisk"), unix.S_IFBLK|0o600, int(unix.Mkdev(8, 0))))
	testutil.Run(t, "setcap", "cap_net_raw+ep", filepath.Join(src, "usr/bin/ping"))

	// The filesystem sits at an offset in a bigger file, as in a disk.
	img := filepath.Join(t.TempDir(), "disk.raw")
	const off = 1 << 20
	require.NoError(t, os.WriteFile(img, nil, 0o644))
	require.NoError(t, os.Truncate(img, off+64<<20))
	testutil.Run(t, "mke2fs", "-q", "-t", "ext4", "-d", src, "-E", fmt.Sprintf("offset=%d", off), img, "64M")

	dest := filepath.Join(t.TempDir(), "tree")
	require.NoError(t, ExtractExt4(context.Background(), img, off, dest, nil))
	require.NoFileExists(t, filepath.Join(dest, "tmp/hostdisk"))
	require.NoError(t, os.Remove(filepath.Join(src, "tmp/hostdisk")))
	want, got := describe(t, src), describe(t, dest)
	require.Equal(t, want, got)
	var st syscall.Stat_t
	require.NoError(t, syscall.Stat(dest, &st))
	require.Equal(t, uint32(0o755), st.Mode&0o7777)
}

// A filesystem that e2fsck finds damaged is refused before anything is
// extracted: here the root directory holds the name "evil-one" twice, once
// as a symlink to a host directory and once as a directory with a file in
// it, which would make rdump write through the symlink onto the host.
func TestExtractExt4RefusesACorruptFilesystem(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.Require(t, "mke2fs", "debugfs", "e2fsck")
	host := t.TempDir() // what a hostile image aims at
	src := filepath.Join(t.TempDir(), "src")
	require.NoError(t, os.MkdirAll(filepath.Join(src, "evil-two"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(src, "evil-two", "payload"), []byte("owned"), 0o644))
	require.NoError(t, os.Symlink(host, filepath.Join(src, "evil-one")))
	img := filepath.Join(t.TempDir(), "fs.raw")
	require.NoError(t, os.WriteFile(img, nil, 0o644))
	require.NoError(t, os.Truncate(img, 16<<20))
	// Without metadata checksums, renaming the directory's entry in place is
	// the only damage.
	testutil.Run(t, "mke2fs", "-q", "-t", "ext4", "-O", "^metadata_csum,^dir_index", "-d", src, img)
	data, err := os.ReadFile(img)
	require.NoError(t, err)
	require.Equal(t, 1, strings.Count(string(data), "evil-two"))
	require.NoError(t, os.WriteFile(img, []byte(strings.Replace(string(data), "evil-two", "evil-one", 1)), 0o644))
	out := testutil.Run(t, "debugfs", "-R", "ls -p /", img)
	require.Equal(t, 2, strings.Count(string(out), "/evil-one/"), "the image has the duplicate name:\n%s", out)

	dest := filepath.Join(t.TempDir(), "tree")
	err = ExtractExt4(context.Background(), img, 0, dest, nil)
	require.Error(t, err)
	require.Contains(t, err.Error(), "not clean")
	entries, _ := os.ReadDir(host)
	require.Empty(t, entries, "nothing was written on the host")
}
