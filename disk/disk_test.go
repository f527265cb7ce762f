package disk

import (
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kiln-build/kiln/internal/testutil"
	"github.com/kiln-build/kiln/platform"
	"github.com/stretchr/testify/require"
)

func TestPlanGPTUEFI(t *testing.T) {
	l, err := Plan(Spec{Size: 2 << 30, Table: platform.GPT, Firmware: platform.UEFI, ESPSize: 256 * MiB, IDs: IDs{Name: "x", Version: "1.0.0"}})
	require.NoError(t, err)
	require.Len(t, l.Partitions, 2)
	esp, root := l.Partitions[0], l.Partitions[1]
	require.Equal(t, RoleESP, esp.Role)
	require.Equal(t, uint64(MiB), esp.Start)
	require.Equal(t, uint64(256*MiB), esp.Size)
	require.Equal(t, esp.Start+esp.Size, root.Start)
	require.Equal(t, uint64(2<<30-MiB), root.Start+root.Size, "root ends 1 MiB before the end, leaving room for the backup GPT")
	for _, p := range l.Partitions {
		require.Zero(t, p.Start%MiB, "partition %d aligned", p.Number)
		require.Zero(t, p.Size%MiB)
	}
	// Identifiers are derived, stable and distinct.
	l2, _ := Plan(Spec{Size: 2 << 30, Table: platform.GPT, Firmware: platform.UEFI, ESPSize: 256 * MiB, IDs: IDs{Name: "x", Version: "1.0.0"}})
	require.Equal(t, l, l2)
	l3, _ := Plan(Spec{Size: 2 << 30, Table: platform.GPT, Firmware: platform.UEFI, ESPSize: 256 * MiB, IDs: IDs{Name: "x", Version: "1.0.1"}})
	require.NotEqual(t, l.Partitions[1].FSUUID, l3.Partitions[1].FSUUID)
	require.NotEqual(t, esp.GUID, root.GUID)

	fstab := l.Fstab()
	require.Contains(t, fstab, "UUID="+root.FSUUID+"\t/\text4\tdefaults,errors=remount-ro\t0\t1\n")
	require.Contains(t, fstab, "UUID="+esp.FSUUID+"\t/boot/efi\tvfat\tdefaults,umask=0077\t0\t2\n")

	// Mounted on first use: only the ESP's options change, and its fsck pass
	// stays (systemd checks it when the automount is first used).
	auto, err := Plan(Spec{Size: 2 << 30, Table: platform.GPT, Firmware: platform.UEFI, ESPSize: 256 * MiB, ESPAutomount: true, IDs: IDs{Name: "x", Version: "1.0.0"}})
	require.NoError(t, err)
	require.Equal(t, strings.Replace(fstab, "defaults,umask=0077\t", "defaults,umask=0077,noauto,x-systemd.automount\t", 1), auto.Fstab())

	_, err = Plan(Spec{Size: 257 * MiB, Table: platform.GPT, ESPSize: 256 * MiB})
	require.ErrorContains(t, err, "raise disk.size")
}

func TestUUIDShape(t *testing.T) {
	u := IDs{Name: "a"}.UUID("p")
	require.Regexp(t, `^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`, u)
}

func TestMke2fsArgs(t *testing.T) {
	p := Partition{Label: "root", FSUUID: "u-u-i-d", Start: 257 * MiB, Size: 100 * MiB}
	require.Equal(t, []string{"mke2fs", "-t", "ext4", "-F", "-q", "-b", "4096", "-L", "root", "-U", "u-u-i-d",
		"-O", "^metadata_csum_seed", "-E", "offset=269484032,hash_seed=u-u-i-d,nodiscard,root_owner=0:0",
		"-d", "/tree", "/img.raw", "25600"}, Mke2fsArgs("/img.raw", p, "/tree"))
}

// smallTree makes a tree with the kinds of entries mke2fs must keep.
func smallTree(t *testing.T) string {
	tree := filepath.Join(t.TempDir(), "tree")
	require.NoError(t, os.MkdirAll(filepath.Join(tree, "etc"), 0o755))
	require.NoError(t, os.MkdirAll(filepath.Join(tree, "usr/bin"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(tree, "etc/hostname"), []byte("kiln\n"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(tree, "usr/bin/tool"), []byte("#!/bin/sh\necho hi\n"), 0o755))
	require.NoError(t, os.Link(filepath.Join(tree, "usr/bin/tool"), filepath.Join(tree, "usr/bin/tool-link")))
	require.NoError(t, os.Symlink("usr/bin", filepath.Join(tree, "bin")))
	if os.Geteuid() == 0 {
		require.NoError(t, exec.Command("mknod", filepath.Join(tree, "etc/null"), "c", "1", "3").Run())
	}
	return tree
}

func writeTestImage(t *testing.T, tree, path string) *Layout {
	l, err := Plan(Spec{Size: 512 * MiB, Table: platform.GPT, ESPSize: 64 * MiB, IDs: IDs{Name: "disk-test", Version: "1.0.0"}})
	require.NoError(t, err)
	err = Write(context.Background(), path, l, Content{
		Tree: tree, SourceDate: 1700000000, Log: io.Discard,
		ESP: []File{{Path: "EFI/BOOT/BOOTX64.EFI", Data: []byte("not really an EFI binary")}, {Path: "loader/entries/kiln.conf", Data: []byte("title kiln\n")}},
	})
	require.NoError(t, err)
	return l
}

// The written image is judged by sgdisk, fsck.vfat, mtools and e2fsck.
func TestWriteIsCleanForIndependentTools(t *testing.T) {
	testutil.Require(t, "mke2fs", "e2fsck", "debugfs", "sgdisk", "fsck.vfat", "mdir")
	tree := smallTree(t)
	img := filepath.Join(t.TempDir(), "disk.raw")
	l := writeTestImage(t, tree, img)

	out := testutil.Run(t, "sgdisk", "-v", img)
	require.Contains(t, string(out), "No problems found")
	out = testutil.Run(t, "sgdisk", "-p", img)
	require.Contains(t, string(out), "Disk identifier (GUID): "+l.DiskGUID)
	require.Regexp(t, `(?m)^\s+1\s+2048\s+133119\s+64\.0 MiB\s+EF00\s+ESP$`, string(out))

	esp, root := l.Partitions[0], l.Partitions[1]
	espFile := extract(t, img, esp.Start, esp.Size)
	out = testutil.Run(t, "fsck.vfat", "-n", espFile)
	out = testutil.Run(t, "mdir", "-/", "-i", img+"@@"+strconv.FormatUint(esp.Start, 10), "::")
	require.Contains(t, string(out), "BOOTX64  EFI")
	require.Contains(t, string(out), strings.ReplaceAll(esp.FSUUID, "-", "-"))

	target := img + "?offset=" + strconv.FormatUint(root.Start, 10)
	out = testutil.Run(t, "e2fsck", "-fn", target)
	out = testutil.Run(t, "debugfs", "-R", "stat /usr/bin/tool-link", target)
	require.Contains(t, string(out), "Links: 2", "hard links are kept")
	out = testutil.Run(t, "dumpe2fs", "-h", target)
	require.Contains(t, string(out), "Filesystem UUID:          "+root.FSUUID)
	require.NotContains(t, string(out), "metadata_csum_seed")
	if os.Geteuid() == 0 {
		out = testutil.Run(t, "debugfs", "-R", "stat /etc/null", target)
		require.Contains(t, string(out), "Type: character special", "device nodes are kept")
	}
}

// Assembling the same tree twice gives a byte-identical image.
func TestWriteIsReproducible(t *testing.T) {
	testutil.Require(t, "mke2fs")
	tree := smallTree(t)
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a.raw"), filepath.Join(dir, "b.raw")
	writeTestImage(t, tree, a)
	writeTestImage(t, tree, b)
	require.Equal(t, testutil.FileSHA256(t, a), testutil.FileSHA256(t, b))
}

func TestWriteRefusesExistingFile(t *testing.T) {
	img := filepath.Join(t.TempDir(), "disk.raw")
	require.NoError(t, os.WriteFile(img, []byte("earlier build"), 0o644))
	l, err := Plan(Spec{Size: 512 * MiB, Table: platform.GPT, ESPSize: 64 * MiB})
	require.NoError(t, err)
	require.Error(t, Write(context.Background(), img, l, Content{Tree: t.TempDir()}))
	data, _ := os.ReadFile(img)
	require.Equal(t, "earlier build", string(data))
}

func extract(t *testing.T, img string, off, size uint64) string {
	f, err := os.Open(img)
	require.NoError(t, err)
	defer f.Close()
	out := filepath.Join(t.TempDir(), "part.img")
	o, err := os.Create(out)
	require.NoError(t, err)
	defer o.Close()
	_, err = io.Copy(o, io.NewSectionReader(f, int64(off), int64(size)))
	require.NoError(t, err)
	return out
}

func TestSetTreeTimesClamps(t *testing.T) {
	tree := t.TempDir()
	old, newer := filepath.Join(tree, "old"), filepath.Join(tree, "new")
	require.NoError(t, os.WriteFile(old, nil, 0o644))
	require.NoError(t, os.WriteFile(newer, nil, 0o644))
	require.NoError(t, os.Symlink("/nonexistent", filepath.Join(tree, "link")))
	past := time.Unix(1000000000, 0)
	require.NoError(t, os.Chtimes(old, past, past))
	require.NoError(t, SetTreeTimes(tree, 1700000000))
	fi, _ := os.Stat(old)
	require.Equal(t, past.Unix(), fi.ModTime().Unix(), "older files keep their time")
	fi, _ = os.Stat(newer)
	require.Equal(t, int64(1700000000), fi.ModTime().Unix())
	li, _ := os.Lstat(filepath.Join(tree, "link"))
	require.Equal(t, int64(1700000000), li.ModTime().Unix(), "symlinks themselves are clamped")
}

func TestMountedAtBoot(t *testing.T) {
	for opts, want := range map[string]bool{
		"": true, "umask=0077": true, "defaults,nodev": true, "noautodefrag": true,
		"umask=0077," + ESPAutomountOpts: false, "x-systemd.automount": false, "noauto": false,
	} {
		require.Equal(t, want, MountedAtBoot(opts), opts)
	}
}
