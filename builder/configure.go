package builder

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/kiln-build/kiln/bootloader"
	"github.com/kiln-build/kiln/disk"
	"github.com/kiln-build/kiln/internal/fsroot"
	"github.com/kiln-build/kiln/internal/parttype"
	"github.com/kiln-build/kiln/platform"
	"github.com/kiln-build/kiln/recipes"
)

// DiskSpec is what the recipe's disk and boot blocks ask of the disk
// layout. Partitions is nil for the boot mode's default layout; with
// size = "auto" Size is 0, and planDisk sizes the disk from the content.
func DiskSpec(img recipes.Image) (disk.Spec, error) {
	d := img.Disk
	spec := disk.Spec{
		Size:         d.Size,
		Table:        d.Table,
		Firmware:     img.Boot.Firmware,
		ESPSize:      d.ESPSize,
		ESPAutomount: d.ESPAutomount,
		IDs:          disk.IDs{Name: img.Name, Version: img.Version, Seed: d.Seed},
		DiskGUID:     d.GUID,
		Signature:    d.Signature,
	}
	for _, p := range d.Partitions {
		t, err := parttype.Parse(p.Type)
		if err != nil {
			return spec, err
		}
		ps := disk.PartSpec{Label: p.Label, Size: p.Size, Type: t, FS: p.Filesystem, Mount: p.Mount, MountOpts: p.Options, GUID: p.GUID, FSUUID: p.UUID}
		if ps.FS == "none" {
			ps.FS = ""
		}
		switch {
		case t.Alias == "esp":
			ps.Role = disk.RoleESP
		case t.Alias == "bios":
			ps.Role = disk.RoleBIOS
		case p.Mount == "/":
			ps.Role = disk.RoleRoot
		}
		spec.Partitions = append(spec.Partitions, ps)
	}
	return spec, nil
}

// planDisk turns the recipe's disk and boot blocks into a layout. With
// size = "auto" the partition that takes the rest is sized from the content
// below its mount point plus the headroom; every ext4 partition is checked
// to hold its content.
func planDisk(img recipes.Image, tree string) (*disk.Layout, error) {
	d := img.Disk
	spec, err := DiskSpec(img)
	if err != nil {
		return nil, err
	}
	parts := spec.PartSpecs()
	usage, err := contentByMount(tree, parts)
	if err != nil {
		return nil, err
	}
	if d.Auto {
		spec.Size = autoSize(spec.Table, parts, usage, d.Headroom)
	}
	l, err := disk.Plan(spec)
	if err != nil {
		return nil, err
	}
	for _, p := range l.Partitions {
		if p.FS != "ext4" {
			continue
		}
		if need := ext4Need(usage[p.Mount]); need > p.Size {
			return nil, fmt.Errorf("partition %d (%s, mounted at %s) is %d MiB but its content needs about %d MiB; raise its size or disk.size, or use size = \"auto\"",
				p.Number, p.Label, p.Mount, p.Size/disk.MiB, need/disk.MiB)
		}
	}
	return l, nil
}

// ext4Need estimates the partition size an ext4 filesystem needs for content
// bytes: the content plus 10%, inode tables and bitmaps (about 2%) and the
// journal (mke2fs picks up to 64 MiB).
func ext4Need(content uint64) uint64 {
	return content + content/10 + content/50 + 64*disk.MiB
}

// autoSize is the disk size for size = "auto": fixed partitions as declared,
// the partition that takes the rest sized for its content plus headroom
// percent, the partition table's room, rounded up to 1 MiB.
func autoSize(t platform.Table, parts []disk.PartSpec, usage map[string]uint64, headroom int) uint64 {
	total := uint64(disk.MiB) // alignment before the first partition
	if t == platform.GPT {
		total += disk.MiB // backup table
	}
	for _, p := range parts {
		size := p.Size
		if size == 0 {
			size = ext4Need(usage[p.Mount] * uint64(100+headroom) / 100)
		}
		total += (size + disk.MiB - 1) / disk.MiB * disk.MiB
	}
	return total
}

// contentByMount returns the bytes the tree needs below each ext4 mount
// point, leaving nested mount points' content to them.
func contentByMount(tree string, parts []disk.PartSpec) (map[string]uint64, error) {
	var mounts []string
	for _, p := range parts {
		if p.FS == "ext4" && p.Mount != "" {
			mounts = append(mounts, p.Mount)
		}
	}
	sort.Slice(mounts, func(i, j int) bool { return len(mounts[i]) > len(mounts[j]) })
	usage := map[string]uint64{}
	err := filepath.WalkDir(tree, func(p string, e os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel := "/" + filepath.ToSlash(strings.TrimPrefix(strings.TrimPrefix(p, tree), "/"))
		owner := "/"
		for _, m := range mounts {
			if rel == m || strings.HasPrefix(rel, strings.TrimSuffix(m, "/")+"/") {
				owner = m
				break
			}
		}
		n := uint64(256) // inode
		switch {
		case e.Type().IsRegular():
			fi, err := e.Info()
			if err != nil {
				return err
			}
			n += (uint64(fi.Size()) + 4095) / 4096 * 4096
		case e.IsDir():
			n += 4096
		}
		usage[owner] += n
		return nil
	})
	return usage, err
}

// configureTree writes /etc/fstab, GRUB's configuration and the mount points
// into the tree, and returns the bootloader configuration.
func configureTree(tree string, l *disk.Layout, img recipes.Image) (bootloader.Config, error) {
	c := bootloader.Config{RootUUID: l.Root().FSUUID, BootPrefix: "/boot", KernelArgs: img.Boot.KernelCmdline, Title: img.Name + " " + img.Version,
		MenuTimeout: int(img.Boot.MenuTimeout / time.Second)}
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
	if img.Boot.SecureBoot == platform.SecureBootDistro {
		if err := fsroot.WriteFile(tree, "/etc/default/grub", []byte(bootloader.DefaultGrub(c)), 0o644); err != nil {
			return c, err
		}
	}
	if img.Disk.Grow {
		if err := installGrowroot(tree); err != nil {
			return c, err
		}
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
	boot, err := fsroot.ResolveForWrite(tree, "/boot/vmlinuz")
	if err != nil {
		return err
	}
	boot = filepath.Dir(boot)
	version, err := kernelVersion(tree)
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

// disableUnits does what systemctl disable does to the tree's units: it
// removes their .wants and .requires links under /etc/systemd/system. Every
// path is resolved inside the tree (a .wants directory may be a link).
func disableUnits(tree string, names ...string) error {
	dir, err := fsroot.Resolve(tree, "/etc/systemd/system")
	if err != nil {
		return err
	}
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	} else if err != nil {
		return err
	}
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".wants") && !strings.HasSuffix(e.Name(), ".requires") {
			continue
		}
		for _, name := range names {
			p := path.Join("/etc/systemd/system", e.Name(), name)
			host, err := fsroot.ResolveForWrite(tree, path.Dir(p))
			if err != nil {
				return err
			}
			if fi, err := os.Lstat(filepath.Join(host, name)); err == nil && fi.Mode()&os.ModeSymlink != 0 {
				if err := fsroot.Remove(tree, p); err != nil {
					return err
				}
			}
		}
	}
	return nil
}
