package builder

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kiln-build/kiln/recipes"
)

// An imported tree without a kernel, systemd or GRUB is refused with the
// packages to install; one that has them all passes.
func TestCheckImportedTree(t *testing.T) {
	tree := t.TempDir()
	img := recipes.Image{Boot: recipes.Boot{Firmware: "hybrid"}, Disk: recipes.Disk{Grow: true}}
	err := checkImportedTree(tree, img)
	require.Error(t, err)
	require.Contains(t, err.Error(), "apt-get install -y cloud-guest-utils e2fsprogs grub-common grub-efi-amd64-bin grub-pc-bin linux-image-amd64 systemd-sysv")

	for _, f := range []string{"usr/lib/systemd/systemd", "usr/bin/grub-mkimage", "usr/sbin/mkfs.ext4", "usr/lib/grub/x86_64-efi/normal.mod",
		"usr/lib/grub/i386-pc/boot.img", "boot/vmlinuz-6.1.0-test"} {
		require.NoError(t, os.MkdirAll(filepath.Join(tree, filepath.Dir(f)), 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(tree, f), nil, 0o644))
	}
	err = checkImportedTree(tree, img)
	require.Error(t, err)
	require.Contains(t, err.Error(), "apt-get install -y cloud-guest-utils\"")
	img.Disk.Grow = false
	require.NoError(t, checkImportedTree(tree, img))

	// /bin -> usr/bin style links resolve inside the tree, never on the host.
	require.NoError(t, os.RemoveAll(filepath.Join(tree, "usr/lib/systemd")))
	require.NoError(t, os.MkdirAll(filepath.Join(tree, "lib"), 0o755))
	require.NoError(t, os.Symlink("/usr/lib/nowhere", filepath.Join(tree, "lib/systemd")))
	require.ErrorContains(t, checkImportedTree(tree, img), "systemd-sysv")
}
