package builder

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/kiln-build/kiln/bootloader"
	"github.com/kiln-build/kiln/builder/disk"
	"github.com/kiln-build/kiln/internal/fsroot"
	"github.com/kiln-build/kiln/recipes"
)

// planDisk turns the recipe's disk and boot blocks into a layout.
func planDisk(img recipes.Image, tree string) (*disk.Layout, error) {
	spec := disk.Spec{
		Size:     img.Disk.Size,
		Table:    disk.Table(img.Disk.Table),
		Firmware: disk.Firmware(img.Boot.Firmware),
		ESPSize:  img.Disk.ESPSize,
		IDs:      disk.IDs{Name: img.Name, Version: img.Version},
	}
	l, err := disk.Plan(spec)
	if err != nil {
		return nil, err
	}
	need, err := treeSize(tree)
	if err != nil {
		return nil, err
	}
	if root := l.Root(); need+need/10 > root.Size {
		return nil, fmt.Errorf("the root tree needs about %d MiB but the root partition has %d MiB; raise disk.size in the recipe", (need+need/10)/disk.MiB, root.Size/disk.MiB)
	}
	return l, nil
}

// configureTree writes /etc/fstab, GRUB's configuration and the mount points
// into the tree, and returns the bootloader configuration.
func configureTree(tree string, l *disk.Layout, img recipes.Image) (bootloader.Config, error) {
	c := bootloader.Config{RootUUID: l.Root().FSUUID, BootPrefix: "/boot", KernelArgs: img.Boot.KernelCmdline, Title: img.Name + " " + img.Version}
	grubCfg := "/boot/grub/grub.cfg"
	if boot := l.Mounted("/boot"); boot != nil {
		// /boot is its own filesystem: GRUB finds it by UUID and reads
		// /grub/grub.cfg and the /vmlinuz symlink from it.
		c.BootUUID, c.BootPrefix = boot.FSUUID, ""
		if err := linkInBoot(tree); err != nil {
			return c, err
		}
	}
	if err := fsroot.WriteFile(tree, "/etc/fstab", []byte(l.Fstab()), 0o644); err != nil {
		return c, err
	}
	if err := fsroot.WriteFile(tree, grubCfg, []byte(bootloader.GrubCfg(c)), 0o644); err != nil {
		return c, err
	}
	if err := installGrowroot(tree); err != nil {
		return c, err
	}
	for _, p := range l.Partitions {
		if p.Mount != "" && p.Mount != "/" {
			if _, err := fsroot.MkdirAll(tree, p.Mount, 0o755); err != nil {
				return c, err
			}
		}
	}
	return c, nil
}

// linkInBoot makes Debian keep its vmlinuz/initrd.img symlinks in /boot
// (and creates them now), so a separate /boot filesystem carries them.
func linkInBoot(tree string) error {
	if err := fsroot.WriteFile(tree, "/etc/kernel-img.conf", []byte("# kiln: /boot is a separate filesystem\nlink_in_boot = yes\n"), 0o644); err != nil {
		return err
	}
	version, err := kernelVersion(tree)
	if err != nil {
		return err
	}
	boot, err := fsroot.Resolve(tree, "/boot")
	if err != nil {
		return err
	}
	for link, target := range map[string]string{"vmlinuz": "vmlinuz-" + version, "initrd.img": "initrd.img-" + version} {
		p := filepath.Join(boot, link)
		_ = os.Remove(p)
		if err := os.Symlink(target, p); err != nil {
			return err
		}
	}
	return nil
}

// biosCoreLocation returns where GRUB's core.img goes: the BIOS boot
// partition on GPT, or the gap between the MBR and the first partition.
func biosCoreLocation(l *disk.Layout) (lba, room uint64) {
	if p := l.Find(disk.RoleBIOS); p != nil {
		return p.Start / disk.SectorSize, p.Size / disk.SectorSize
	}
	first := l.Partitions[0].Start / disk.SectorSize
	return 1, first - 1
}

func mergeFailures(fs []*TestFailure) *TestFailure {
	out := &TestFailure{}
	for _, f := range fs {
		out.Failed = append(out.Failed, f.Failed...)
		out.Health = append(out.Health, f.Health...)
	}
	return out
}
