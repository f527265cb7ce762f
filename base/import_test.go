package base

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kiln-build/kiln/internal/testutil"
	"github.com/kiln-build/kiln/manifest"
)

const bootUUID = "0b0e0b0e-1111-4222-8333-444455556666"

// handmadeDisk builds a GPT disk the way another tool would: sfdisk for the
// table, mke2fs -d for a root filesystem whose /etc/fstab mounts a separate
// /boot partition (by UUID), which holds the kernel, and a /var partition
// (by label).
func handmadeDisk(t *testing.T, extraFstab ...string) string {
	t.Helper()
	testutil.RequireRoot(t)
	testutil.Require(t, "sfdisk", "mke2fs", "debugfs", "e2fsck")
	dir := t.TempDir()
	root, boot, varfs := filepath.Join(dir, "root"), filepath.Join(dir, "boot"), filepath.Join(dir, "var")
	for _, d := range []string{"etc", "boot", "var", "usr/bin", "tmp"} {
		require.NoError(t, os.MkdirAll(filepath.Join(root, d), 0o755))
	}
	require.NoError(t, os.Chmod(filepath.Join(root, "tmp"), os.ModeSticky|0o777))
	require.NoError(t, os.WriteFile(filepath.Join(root, "etc/fstab"),
		[]byte("# made by hand\nLABEL=rootfs / ext4 defaults 0 1\nUUID="+bootUUID+" /boot ext4 defaults 0 2\nLABEL=var /var ext4 nodev 0 2\n/dev/sr0 /media/cdrom udf,iso9660 user,noauto 0 0\nUUID=0000aaaa-0000-4000-8000-000000000000 /mnt/usb ext4 nofail 0 0\n"+strings.Join(extraFstab, "")), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(root, "usr/bin/hello"), []byte("#!/bin/sh\necho hello\n"), 0o755))
	require.NoError(t, os.Chmod(filepath.Join(root, "usr/bin/hello"), os.ModeSetuid|0o755))
	require.NoError(t, os.MkdirAll(filepath.Join(boot, "grub"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(boot, "vmlinuz-6.1.0-test"), []byte("kernel"), 0o644))
	require.NoError(t, os.MkdirAll(filepath.Join(varfs, "lib/app"), 0o750))
	require.NoError(t, os.WriteFile(filepath.Join(varfs, "lib/app/state"), []byte("state"), 0o640))

	img := filepath.Join(dir, "handmade.raw")
	require.NoError(t, os.WriteFile(img, nil, 0o644))
	require.NoError(t, os.Truncate(img, 64<<20))
	table := "label: gpt\n" +
		"start=2048, size=16384, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, name=ESP\n" +
		"start=18432, size=32768, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, name=boot\n" +
		"start=51200, size=32768, type=4D21B016-B534-45C2-A9FB-5C16E091FD2D, name=var\n" +
		"start=83968, type=4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709, name=root\n"
	testutil.RunStdin(t, table, "sfdisk", "--no-reread", "--no-tell-kernel", img)
	for _, fs := range []struct {
		src        string
		start, len int64
		extra      []string
	}{
		{boot, 18432 * 512, 32768 * 512, []string{"-U", bootUUID}},
		{varfs, 51200 * 512, 32768 * 512, []string{"-L", "var"}},
		{root, 83968 * 512, 64<<20 - 83968*512 - 34*512, []string{"-L", "rootfs"}},
	} {
		args := append([]string{"-q", "-t", "ext4", "-d", fs.src, "-E", fmt.Sprintf("offset=%d", fs.start)}, fs.extra...)
		args = append(args, img, fmt.Sprintf("%dk", fs.len/1024))
		testutil.Run(t, "mke2fs", args...)
	}
	return img
}

// A hand-made raw disk, the VMDK, VHD, qcow2 and VHDX qemu-img makes of it and a
// zstd-compressed copy are
// imported: the root and the /boot partition its fstab names end up in one
// tree with the /var partition it mounts by label, setuid bits and all.
func TestImportFileHandmadeDisk(t *testing.T) {
	raw := handmadeDisk(t)
	testutil.Require(t, "qemu-img", "zstd")
	for _, c := range []struct{ format, qemu string }{{"raw", ""}, {"vmdk", "vmdk"}, {"vhd", "vpc"}, {"qcow2", "qcow2"}, {"vhdx", "vhdx"}, {"raw", "zstd"}} {
		t.Run(c.format+"-"+c.qemu, func(t *testing.T) {
			file := raw
			if c.qemu == "zstd" {
				file = filepath.Join(t.TempDir(), "disk.raw.zst")
				testutil.Run(t, "zstd", "-q", "-o", file, raw)
			} else if c.qemu != "" {
				file = filepath.Join(t.TempDir(), "disk."+c.format)
				testutil.Run(t, "qemu-img", "convert", "-O", c.qemu, raw, file)
			}
			tree := filepath.Join(t.TempDir(), "tree")
			p, err := ImportFile(context.Background(), FileBase{Path: file, SHA256: testutil.FileSHA256(t, file)}, tree, t.TempDir(), io.Discard)
			require.NoError(t, err)
			require.Equal(t, c.format, p.Format)
			require.Equal(t, testutil.FileSHA256(t, file), p.SHA256)
			require.Len(t, p.Extracted, 3)
			require.Equal(t, "/", p.Extracted[0].Mount)
			require.Equal(t, 4, p.Extracted[0].Partition)
			require.Equal(t, manifest.ExtractedFS{Mount: "/boot", Partition: 2, UUID: bootUUID}, p.Extracted[1])
			require.Equal(t, "/var", p.Extracted[2].Mount)
			require.Equal(t, 3, p.Extracted[2].Partition)
			data, err := os.ReadFile(filepath.Join(tree, "var/lib/app/state"))
			require.NoError(t, err)
			require.Equal(t, "state", string(data))
			data, err = os.ReadFile(filepath.Join(tree, "boot/vmlinuz-6.1.0-test"))
			require.NoError(t, err)
			require.Equal(t, "kernel", string(data))
			fi, err := os.Stat(filepath.Join(tree, "usr/bin/hello"))
			require.NoError(t, err)
			require.Equal(t, os.ModeSetuid|0o755, fi.Mode()&(os.ModeSetuid|os.ModePerm))
			fi, err = os.Stat(filepath.Join(tree, "tmp"))
			require.NoError(t, err)
			require.NotZero(t, fi.Mode()&os.ModeSticky)
			require.NoDirExists(t, filepath.Join(tree, "lost+found"))
		})
	}
}

// Each way a file base can be wrong is a clear error, and nothing is
// extracted from a file whose sha256 does not match.
func TestImportFileErrors(t *testing.T) {
	raw := handmadeDisk(t)
	dir := t.TempDir()
	try := func(path, sum string) error {
		tree := filepath.Join(t.TempDir(), "tree")
		_, err := ImportFile(context.Background(), FileBase{Path: path, SHA256: sum}, tree, t.TempDir(), io.Discard)
		require.Error(t, err)
		entries, _ := os.ReadDir(tree)
		require.Empty(t, entries, "nothing extracted")
		return err
	}

	err := try(raw, strings.Repeat("0", 64))
	require.Contains(t, err.Error(), "sha256 mismatch: the file has "+testutil.FileSHA256(t, raw)+", expected "+strings.Repeat("0", 64))

	err = try(filepath.Join(dir, "missing.vmdk"), strings.Repeat("0", 64))
	require.Contains(t, err.Error(), "no such file")

	junk := filepath.Join(dir, "notes.txt")
	require.NoError(t, os.WriteFile(junk, []byte(strings.Repeat("not a disk\n", 100)), 0o644))
	err = try(junk, testutil.FileSHA256(t, junk))
	require.Contains(t, err.Error(), "cannot read its partition table")

	// A disk whose only partition is not ext4.
	noRoot := filepath.Join(dir, "noroot.raw")
	require.NoError(t, os.WriteFile(noRoot, nil, 0o644))
	require.NoError(t, os.Truncate(noRoot, 16<<20))
	testutil.RunStdin(t, "label: gpt\nstart=2048, type=0657FD6D-A4AB-43C4-84E5-0933C84B4F4F\n", "sfdisk", "--no-reread", "--no-tell-kernel", noRoot)
	err = try(noRoot, testutil.FileSHA256(t, noRoot))
	require.Contains(t, err.Error(), "no partition holds an ext2/3/4 filesystem")

	// A truncated VMDK: its header promises more than the file holds.
	vmdk := filepath.Join(dir, "disk.vmdk")
	testutil.Run(t, "qemu-img", "convert", "-O", "vmdk", raw, vmdk)
	require.NoError(t, os.Truncate(vmdk, 4096))
	err = try(vmdk, testutil.FileSHA256(t, vmdk))
	require.Contains(t, err.Error(), "base file "+vmdk)
	t.Log(err)
}

// An fstab entry for a filesystem the disk does not hold fails the import
// (its content would be lost) unless it is nofail or noauto.
func TestImportFileFstabNamesAMissingFilesystem(t *testing.T) {
	raw := handmadeDisk(t, "UUID=12345678-0000-4000-8000-000000000000 /srv ext4 defaults 0 2\n")
	_, err := ImportFile(context.Background(), FileBase{Path: raw, SHA256: testutil.FileSHA256(t, raw)}, filepath.Join(t.TempDir(), "tree"), t.TempDir(), io.Discard)
	require.Error(t, err)
	require.Contains(t, err.Error(), "its /etc/fstab mounts UUID=12345678-0000-4000-8000-000000000000 on /srv, but no ext4 partition of the disk is UUID=12345678-0000-4000-8000-000000000000")
}

// Mount points in a hostile fstab stay inside the tree.
func TestFstabMountsStayInTheTree(t *testing.T) {
	tree := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(tree, "etc"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(tree, "etc/fstab"), []byte(
		"UUID=a /../../../var ext4 defaults 0 2\nLABEL=b /boot auto defaults 0 2\n/dev/sda1 /x vfat defaults 0 0\nnone /tmp tmpfs defaults 0 0\n"), 0o644))
	m, err := fstabMounts(tree)
	require.NoError(t, err)
	require.Equal(t, []fstabMount{{spec: "UUID=a", dir: "/var", uuid: "a"}, {spec: "LABEL=b", dir: "/boot", label: "b"}}, m)
}

// A parent is picked by the selector from the catalog; deprecated builds
// only with include_deprecated, and the error says how.
func TestImportImageSelectsFromTheCatalog(t *testing.T) {
	raw := handmadeDisk(t)
	root := t.TempDir()
	publish := func(version string, build int, deprecated bool) string {
		dir := filepath.Join(root, "base", version, fmt.Sprint(build))
		require.NoError(t, os.MkdirAll(dir, 0o755))
		data, err := os.ReadFile(raw)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(dir, "base.raw"), data, 0o644))
		sum := testutil.FileSHA256(t, raw)
		require.NoError(t, os.WriteFile(filepath.Join(dir, "manifest.json"), []byte(fmt.Sprintf(
			`{"schema_version":1,"name":"base","version":%q,"build":%d,"outputs":[{"file":"base.raw","format":"raw","sha256":%q}]}`, version, build, sum)), 0o644))
		if deprecated {
			require.NoError(t, os.WriteFile(filepath.Join(dir, "catalog.json"), []byte(`{"deprecated_at":"2020-01-01T00:00:00Z"}`), 0o644))
		}
		return dir
	}
	publish("1.0.0", 1, false)
	publish("1.1.0", 1, false)
	publish("2.0.0", 1, true)
	tree := func() string { return filepath.Join(t.TempDir(), "tree") }

	p, err := ImportImage(context.Background(), ImageBase{Root: root, Name: "base", Selector: "x.x.x"}, tree(), t.TempDir(), io.Discard)
	require.NoError(t, err)
	require.Equal(t, "1.1.0", p.Version, "2.0.0 is deprecated")
	require.Equal(t, testutil.FileSHA256(t, raw), p.SHA256)

	p, err = ImportImage(context.Background(), ImageBase{Root: root, Name: "base", Selector: "2.x.x", IncludeDeprecated: true}, tree(), t.TempDir(), io.Discard)
	require.NoError(t, err)
	require.Equal(t, "2.0.0", p.Version)

	_, err = ImportImage(context.Background(), ImageBase{Root: root, Name: "base", Selector: "2.x.x"}, tree(), t.TempDir(), io.Discard)
	require.ErrorContains(t, err, "set include_deprecated = true in the base block")

	// A published disk that no longer matches its manifest is refused.
	dir := publish("3.0.0", 1, false)
	f, err := os.OpenFile(filepath.Join(dir, "base.raw"), os.O_WRONLY, 0)
	require.NoError(t, err)
	_, err = f.WriteAt([]byte("tampered"), 4096)
	require.NoError(t, err)
	require.NoError(t, f.Close())
	_, err = ImportImage(context.Background(), ImageBase{Root: root, Name: "base", Selector: "3.0.0"}, tree(), t.TempDir(), io.Discard)
	require.ErrorContains(t, err, "parent base/3.0.0/1: sha256 mismatch")
}
