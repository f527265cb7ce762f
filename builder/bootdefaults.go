package builder

import (
	"strings"

	"github.com/kiln-build/kiln/bootloader"
	"github.com/kiln-build/kiln/disk"
	"github.com/kiln-build/kiln/internal/fsroot"
	"github.com/kiln-build/kiln/recipes"
)

// espModulesConf makes systemd-modules-load load the modules a vfat mount
// needs early in the boot, alongside the other early work. Left to the
// mount of /boot/efi, they load one after the other on the way to
// local-fs.target, queued behind what udev loads at the same time (under
// emulation that took 11 s of a 57 s systemd phase). The same modules end
// up loaded either way.
const espModulesConf = `# Written by kiln: load the modules mounting the EFI system partition needs
# early, rather than one by one when /boot/efi is mounted. Removing this
# file changes nothing but when they load.
vfat
nls_cp437
nls_ascii
`

const espModulesPath = "/etc/modules-load.d/kiln-esp.conf"

// writeBootDefaults makes the changes every image gets for faster boots
// (docs/boot-modes.md) that a build step may undo: it runs before the build
// steps.
func writeBootDefaults(tree string, img recipes.Image) error {
	if err := disableUnits(tree, bootloader.UnusedUnits...); err != nil {
		return err
	}
	if hasVFAT(img) {
		return fsroot.WriteFile(tree, espModulesPath, []byte(espModulesConf), 0o644)
	}
	return nil
}

// bootDefaultsKey names what writeBootDefaults writes into img's tree, for
// the key of the tree the build steps start from (layers.go): change it
// with writeBootDefaults.
func bootDefaultsKey(img recipes.Image) string {
	k := "boot-defaults: disabled " + strings.Join(bootloader.UnusedUnits, " ")
	if hasVFAT(img) {
		k += "; " + espModulesPath + "\n" + espModulesConf
	}
	return k
}

// hasVFAT says whether the image mounts a vfat filesystem at boot: one of
// the partitions it lays out (declared, else the default layout, whose ESP
// disk.esp_automount may leave to its first use) by its fstab options
// (disk.MountedAtBoot). A disk block DiskSpec refuses fails the build at
// the disk stage; it mounts nothing here.
func hasVFAT(img recipes.Image) bool {
	spec, err := DiskSpec(img)
	if err != nil {
		return false
	}
	for _, p := range spec.PartSpecs() {
		if p.FS == "vfat" && p.Mount != "" && disk.MountedAtBoot(p.MountOpts) {
			return true
		}
	}
	return false
}
