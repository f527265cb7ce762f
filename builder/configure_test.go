package builder

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/kiln-build/kiln/disk"
	"github.com/kiln-build/kiln/platform"
	"github.com/kiln-build/kiln/recipes"
	"github.com/stretchr/testify/require"
)

func writeFile(t *testing.T, root, p string, size int) {
	require.NoError(t, os.MkdirAll(filepath.Join(root, filepath.Dir(p)), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(root, p), make([]byte, size), 0o644))
}

func TestContentByMount(t *testing.T) {
	tree := t.TempDir()
	writeFile(t, tree, "etc/a", 10000)    // 3 blocks
	writeFile(t, tree, "var/lib/b", 1)    // 1 block
	writeFile(t, tree, "var/log/c", 5000) // 2 blocks, but /var/log is its own mount
	parts := []disk.PartSpec{{FS: "ext4", Mount: "/"}, {FS: "ext4", Mount: "/var"}, {FS: "ext4", Mount: "/var/log"}, {FS: "vfat", Mount: "/boot/efi"}}
	u, err := contentByMount(tree, parts)
	require.NoError(t, err)
	// inodes are 256 bytes, directories one block each
	require.Equal(t, uint64(3*4096+256)+uint64(2*(4096+256)), u["/"], "the tree's top and etc/ plus etc/a")
	require.Equal(t, uint64(2*(4096+256))+uint64(4096+256), u["/var"], "var/, var/lib/ and var/lib/b")
	require.Equal(t, uint64(4096+256)+uint64(2*4096+256), u["/var/log"])
}

func TestAutoSize(t *testing.T) {
	usage := map[string]uint64{"/": 500 * disk.MiB, "/var": 100 * disk.MiB}
	parts := []disk.PartSpec{
		{Size: disk.MiB, Role: disk.RoleBIOS},
		{Size: 256 * disk.MiB, Role: disk.RoleESP, FS: "vfat", Mount: "/boot/efi"},
		{Size: 1024 * disk.MiB, FS: "ext4", Mount: "/var"},
		{FS: "ext4", Mount: "/"},
	}
	got := autoSize(platform.GPT, parts, usage, 20)
	root := ext4Need(600 * disk.MiB) // 500 MiB + 20%
	want := 2*disk.MiB + disk.MiB + 256*disk.MiB + 1024*disk.MiB + (root+disk.MiB-1)/disk.MiB*disk.MiB
	require.Equal(t, want, got)
	require.Zero(t, got%disk.MiB)
	require.Equal(t, got-disk.MiB, autoSize(platform.MBR, parts, usage, 20), "MBR needs no backup table")
}

func image(firmware platform.Firmware, table platform.Table, d recipes.Disk) recipes.Image {
	d.Table = table
	if d.ESPSize == 0 {
		d.ESPSize = 64 * disk.MiB
	}
	return recipes.Image{Name: "t", Version: "1.0.0", Boot: recipes.Boot{Firmware: firmware}, Disk: d}
}

func TestPlanDiskAutoAndChecks(t *testing.T) {
	tree := t.TempDir()
	writeFile(t, tree, "usr/big", 300<<20)
	writeFile(t, tree, "var/data", 200<<20)

	// auto: the root gets its content plus headroom; the plan fits it.
	l, err := planDisk(image("hybrid", "gpt", recipes.Disk{Auto: true, Headroom: 10}), tree)
	require.NoError(t, err)
	require.Greater(t, l.Root().Size, uint64(550<<20))
	require.Less(t, l.Size, uint64(1<<30))

	// A fixed disk too small for the content says which partition and what to do.
	_, err = planDisk(image("uefi", "gpt", recipes.Disk{Size: 512 << 20}), tree)
	require.ErrorContains(t, err, "partition 2 (root, mounted at /)")
	require.ErrorContains(t, err, "size = \"auto\"")

	// Declared partitions: /var gets its own content and IDs can be set.
	d := recipes.Disk{Auto: true, Headroom: 0, Seed: "x", Signature: 0x11223344, Partitions: []recipes.Partition{
		{Label: "var", Size: 400 << 20, Type: "var", Filesystem: "ext4", Mount: "/var", UUID: "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee"},
		{Label: "root", Rest: true, Type: "root", Filesystem: "ext4", Mount: "/"},
	}}
	l, err = planDisk(image("bios", "mbr", d), tree)
	require.NoError(t, err)
	require.Equal(t, uint32(0x11223344), l.Signature)
	require.Equal(t, "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee", l.Mounted("/var").FSUUID)
	require.Equal(t, uint64(400<<20), l.Mounted("/var").Size)

	d.Partitions[0].Size = 100 << 20 // less than /var's 200 MiB
	_, err = planDisk(image("bios", "mbr", d), tree)
	require.ErrorContains(t, err, "partition 1 (var, mounted at /var) is 100 MiB")
}

// disableUnits removes a unit's .wants and .requires links, as systemctl
// disable does, and nothing else.
func TestDisableUnits(t *testing.T) {
	tree := t.TempDir()
	sys := filepath.Join(tree, "etc/systemd/system")
	link := func(dir, name string) string {
		require.NoError(t, os.MkdirAll(filepath.Join(sys, dir), 0o755))
		p := filepath.Join(sys, dir, name)
		require.NoError(t, os.Symlink("/usr/lib/systemd/system/"+name, p))
		return p
	}
	gone := []string{link("multi-user.target.wants", "grub-common.service"), link("suspend.target.wants", "grub-common.service"),
		link("local-fs.target.requires", "grub-common.service")}
	kept := link("multi-user.target.wants", "dbus.service")
	require.NoError(t, disableUnits(tree, "grub-common.service", "absent.service"))
	for _, p := range gone {
		require.NoFileExists(t, p)
	}
	_, err := os.Lstat(kept)
	require.NoError(t, err)
	// A tree without /etc/systemd/system is fine.
	require.NoError(t, disableUnits(t.TempDir(), "grub-common.service"))
}
