package disk

import (
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/kiln-build/kiln/internal/parttype"
	"github.com/kiln-build/kiln/internal/testutil"
	"github.com/kiln-build/kiln/platform"
	"github.com/stretchr/testify/require"
)

func customLayout() Spec {
	return Spec{Size: 2 << 30, Table: platform.GPT, Firmware: platform.Hybrid, IDs: IDs{Name: "custom", Version: "1.0.0", Seed: "s"}, Partitions: []PartSpec{
		{Label: "BIOS", Size: MiB, Role: RoleBIOS, Type: parttype.BIOS},
		{Label: "ESP", Size: 64 * MiB, Role: RoleESP, Type: parttype.ESP, FS: "vfat", Mount: "/boot/efi"},
		{Label: "boot", Size: 128 * MiB, Type: parttype.Linux, FS: "ext4", Mount: "/boot"},
		{Label: "swap", Size: 64 * MiB, Type: parttype.Swap, FS: "swap"},
		{Label: "var", Size: 256 * MiB, Type: parttype.Var, FS: "ext4", Mount: "/var"},
		{Label: "root", Role: RoleRoot, Type: parttype.Root, FS: "ext4", Mount: "/"},
	}}
}

func layoutTree(t *testing.T) string {
	tree := smallTree(t)
	for _, f := range []string{"boot/vmlinuz-1", "var/lib/state", "boot/grub/grub.cfg"} {
		require.NoError(t, os.MkdirAll(filepath.Join(tree, filepath.Dir(f)), 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(tree, f), []byte(f), 0o644))
	}
	return tree
}

func TestCustomLayoutJudged(t *testing.T) {
	testutil.Require(t, "mke2fs", "e2fsck", "debugfs", "sgdisk", "blkid")
	tree := layoutTree(t)
	img := filepath.Join(t.TempDir(), "disk.raw")
	l, err := Plan(customLayout())
	require.NoError(t, err)
	mounts, err := SplitTree(tree, l, filepath.Join(t.TempDir(), "parts"))
	require.NoError(t, err)
	require.NoError(t, Write(context.Background(), img, l, Content{Tree: tree, Mounts: mounts, Log: io.Discard, SourceDate: 1700000000,
		ESP: []File{{Path: "EFI/BOOT/BOOTX64.EFI", Data: []byte("x")}}}))

	out := testutil.Run(t, "sgdisk", "-v", img)
	require.Contains(t, string(out), "No problems found")
	target := func(p *Partition) string { return img + "?offset=" + strconv.FormatUint(p.Start, 10) }
	for _, m := range []string{"/", "/boot", "/var"} {
		out, err := exec.Command("e2fsck", "-fn", target(l.Mounted(m))).CombinedOutput()
		require.NoError(t, err, "%s: %s", m, out)
	}
	cat := func(p *Partition, f string) string {
		out, _ := exec.Command("debugfs", "-R", "cat "+f, target(p)).Output()
		return string(out)
	}
	ls := func(p *Partition, d string) string {
		out, _ := exec.Command("debugfs", "-R", "ls "+d, target(p)).Output()
		return string(out)
	}
	require.Equal(t, "boot/vmlinuz-1", cat(l.Mounted("/boot"), "/vmlinuz-1"), "/boot's content is at the top of the boot filesystem")
	require.Equal(t, "var/lib/state", cat(l.Mounted("/var"), "/lib/state"))
	require.NotContains(t, ls(l.Root(), "/var"), "lib", "the root filesystem has /var as an empty mount point")
	require.NotContains(t, ls(l.Root(), "/boot"), "vmlinuz")
	require.Equal(t, "kiln\n", cat(l.Root(), "/etc/hostname"))

	// SplitTree left empty mount points behind.
	entries, err := os.ReadDir(filepath.Join(tree, "var"))
	require.NoError(t, err)
	require.Empty(t, entries)

	// SOURCE_DATE_EPOCH reaches ctimes too.
	out = testutil.Run(t, "debugfs", "-R", "stat /etc/hostname", target(l.Root()))
	require.Contains(t, string(out), "ctime: 0x6553f100")

	// Swap carries its signature and UUID.
	swap := l.Partitions[3]
	sw := filepath.Join(t.TempDir(), "swap.img")
	require.NoError(t, os.WriteFile(sw, readAt(t, img, swap.Start, 1<<20), 0o644))
	out = testutil.Run(t, "blkid", "-p", "-o", "export", sw)
	require.Contains(t, string(out), "TYPE=swap")
	require.Contains(t, string(out), "UUID="+swap.FSUUID)
	require.Contains(t, string(out), "LABEL=swap")
}

func TestMBRLayoutJudged(t *testing.T) {
	testutil.Require(t, "mke2fs", "e2fsck", "sfdisk")
	tree := smallTree(t)
	img := filepath.Join(t.TempDir(), "disk.raw")
	l, err := Plan(Spec{Size: 1 << 30, Table: platform.MBR, Firmware: platform.Hybrid, ESPSize: 64 * MiB, IDs: IDs{Name: "mbr"}, Signature: 0x1a2b3c4d})
	require.NoError(t, err)
	require.NoError(t, Write(context.Background(), img, l, Content{Tree: tree, Log: io.Discard, ESP: []File{{Path: "EFI/BOOT/BOOTX64.EFI", Data: []byte("x")}}}))
	out := testutil.Run(t, "sfdisk", "--verify", img)
	require.Contains(t, string(out), "No errors detected")
	out = testutil.Run(t, "sfdisk", "--dump", img)
	dump := string(out)
	require.Contains(t, dump, "label: dos")
	require.Contains(t, dump, "label-id: 0x1a2b3c4d")
	require.Regexp(t, `start=\s*2048, size=\s*131072, type=ef\n`, dump)
	require.Regexp(t, `start=\s*133120, size=\s*1964032, type=83, bootable\n`, dump)
	out = testutil.Run(t, "e2fsck", "-fn", img+"?offset="+strconv.FormatUint(l.Root().Start, 10))
}

// Assembling the same tree twice gives byte-identical images, for every layout.
func TestEveryLayoutIsReproducible(t *testing.T) {
	testutil.Require(t, "mke2fs", "debugfs")
	specs := map[string]Spec{
		"gpt-hybrid": {Size: 1 << 30, Table: platform.GPT, Firmware: platform.Hybrid, ESPSize: 64 * MiB, IDs: IDs{Name: "r"}},
		"mbr-bios":   {Size: 1 << 30, Table: platform.MBR, Firmware: platform.BIOS, IDs: IDs{Name: "r"}},
		"custom":     customLayout(),
	}
	for name, spec := range specs {
		var sums []string
		tree := layoutTree(t)
		l, err := Plan(spec)
		require.NoError(t, err)
		mounts, err := SplitTree(tree, l, filepath.Join(t.TempDir(), "parts"))
		require.NoError(t, err)
		for i := 0; i < 2; i++ {
			img := filepath.Join(t.TempDir(), "disk.raw")
			require.NoError(t, Write(context.Background(), img, l, Content{Tree: tree, Mounts: mounts, Log: io.Discard, SourceDate: 1700000000,
				ESP: []File{{Path: "EFI/BOOT/BOOTX64.EFI", Data: []byte("efi")}}}))
			sums = append(sums, testutil.FileSHA256(t, img))
		}
		require.Equal(t, sums[0], sums[1], name)
	}
}

func readAt(t *testing.T, p string, off uint64, n int) []byte {
	f, err := os.Open(p)
	require.NoError(t, err)
	defer f.Close()
	b := make([]byte, n)
	_, err = f.ReadAt(b, int64(off))
	require.NoError(t, err)
	return b
}
