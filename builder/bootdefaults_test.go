package builder

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/kiln-build/kiln/platform"
	"github.com/kiln-build/kiln/recipes"
	"github.com/stretchr/testify/require"
)

// The boot defaults: grub-common disabled, the ESP's modules loaded early
// when the image mounts a vfat filesystem at boot.
func TestWriteBootDefaults(t *testing.T) {
	roots := map[bool][]string{}
	for _, c := range []struct {
		name  string
		img   recipes.Image
		early bool
	}{
		{"uefi", recipes.Image{Boot: recipes.Boot{Firmware: platform.UEFI}}, true},
		{"hybrid", recipes.Image{Boot: recipes.Boot{Firmware: platform.Hybrid}}, true},
		{"bios", recipes.Image{Boot: recipes.Boot{Firmware: platform.BIOS}}, false},
		// the ESP mounted on first use: nothing to load at boot
		{"uefi-esp-automount", recipes.Image{Boot: recipes.Boot{Firmware: platform.UEFI}, Disk: recipes.Disk{ESPAutomount: true}}, false},
		{"declared-esp", recipes.Image{Boot: recipes.Boot{Firmware: platform.BIOS},
			Disk: recipes.Disk{Partitions: []recipes.Partition{{Type: "esp", Filesystem: "vfat", Mount: "/boot/efi"}, {Type: "linux", Filesystem: "ext4", Mount: "/"}}}}, true},
		{"declared-esp-automount", recipes.Image{Boot: recipes.Boot{Firmware: platform.UEFI},
			Disk: recipes.Disk{Partitions: []recipes.Partition{{Type: "esp", Filesystem: "vfat", Mount: "/boot/efi", Options: "umask=0077,x-systemd.automount"}, {Type: "linux", Filesystem: "ext4", Mount: "/"}}}}, false},
		{"declared-no-vfat", recipes.Image{Boot: recipes.Boot{Firmware: platform.UEFI},
			Disk: recipes.Disk{Partitions: []recipes.Partition{{Type: "linux", Filesystem: "ext4", Mount: "/"}}}}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			tree := t.TempDir()
			wants := filepath.Join(tree, "etc/systemd/system/multi-user.target.wants")
			require.NoError(t, os.MkdirAll(wants, 0o755))
			require.NoError(t, os.Symlink("/usr/lib/systemd/system/grub-common.service", filepath.Join(wants, "grub-common.service")))
			require.NoError(t, writeBootDefaults(tree, c.img))
			// The layer cache's root key follows what was written: build
			// steps cached on a tree with the ESP's modules file are not
			// restored onto one without it.
			root := (&state{img: c.img, baseID: "base", opts: Options{CacheDir: t.TempDir()}}).stepCache().root
			roots[c.early] = append(roots[c.early], root)
			require.NoFileExists(t, filepath.Join(wants, "grub-common.service"))
			conf := filepath.Join(tree, espModulesPath)
			if !c.early {
				require.NoFileExists(t, conf)
				return
			}
			data, err := os.ReadFile(conf)
			require.NoError(t, err)
			require.Contains(t, string(data), "\nvfat\nnls_cp437\nnls_ascii\n")
		})
	}
	require.Len(t, roots[true], 3)
	require.Len(t, roots[false], 4)
	for _, r := range roots {
		for _, k := range r {
			require.Equal(t, r[0], k)
		}
	}
	require.NotEqual(t, roots[true][0], roots[false][0])
}
