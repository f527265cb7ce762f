package disk

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/kiln-build/kiln/internal/parttype"
	"github.com/kiln-build/kiln/platform"
)

// Partition is one planned partition. Offsets and sizes are bytes.
type Partition struct {
	Number    int
	Role      Role
	Label     string // GPT partition name and filesystem label
	Type      parttype.Type
	GUID      string // GPT partition GUID (unique)
	Start     uint64
	Size      uint64
	FS        string // "vfat", "ext4", "swap" or "" (none)
	FSUUID    string // filesystem UUID (ext4, swap) or volume ID "XXXX-XXXX" (vfat)
	VolumeID  uint32 // vfat only
	Mount     string // mount point, "" if not mounted
	MountOpts string
	FsckPass  int
	Bootable  bool // MBR active flag
}

// Layout is a whole disk.
type Layout struct {
	Size       uint64
	Table      platform.Table
	Firmware   platform.Firmware
	DiskGUID   string // GPT
	Signature  uint32 // MBR disk signature (also written on GPT disks' protective MBR)
	Partitions []Partition
}

// PartSpec is a partition as a recipe declares it. Size 0 means "the rest".
type PartSpec struct {
	Label     string
	Size      uint64
	Role      Role
	Type      parttype.Type
	FS        string
	Mount     string
	MountOpts string
	GUID      string // partition GUID; "" = derived
	FSUUID    string // filesystem UUID or vfat volume ID "XXXX-XXXX"; "" = derived
}

// Spec is what a recipe asks for.
type Spec struct {
	Size     uint64 // whole disk; 0 = auto (see Content sizes)
	Table    platform.Table
	Firmware platform.Firmware
	ESPSize  uint64 // for the default layout
	// ESPAutomount mounts the default layout's ESP on first use: a systemd
	// automount (noauto,x-systemd.automount in fstab) instead of a mount
	// that local-fs.target waits for.
	ESPAutomount bool
	Partitions   []PartSpec // nil: the default layout for Table and Firmware
	IDs          IDs
	DiskGUID     string // "" = derived from IDs
	Signature    uint32 // 0 = derived from IDs
}

const (
	gptBackup    = MiB // room for GPT's backup header + entries at the end, rounded to 1 MiB
	firstLBA     = MiB // every layout starts at 1 MiB
	biosBootSize = MiB
)

// ESPAutomountOpts are the mount options that make systemd mount the ESP
// on first use (fstab's noauto keeps mount -a off it too).
const ESPAutomountOpts = "noauto,x-systemd.automount"

// MountedAtBoot says whether a filesystem with these fstab options is
// mounted on the way to local-fs.target: not with noauto, and not with
// x-systemd.automount (mounted on first use).
func MountedAtBoot(opts string) bool {
	for _, o := range strings.Split(opts, ",") {
		if o == "noauto" || o == "x-systemd.automount" {
			return false
		}
	}
	return true
}

// DefaultPartitions is the layout used when a recipe declares none: what
// each firmware needs, then a root filesystem filling the disk.
func (s Spec) DefaultPartitions() []PartSpec {
	var ps []PartSpec
	if s.Table == platform.GPT && s.Firmware.HasBIOS() {
		ps = append(ps, PartSpec{Label: "BIOS", Size: biosBootSize, Role: RoleBIOS, Type: parttype.BIOS})
	}
	if s.Firmware.HasUEFI() {
		opts := "umask=0077"
		if s.ESPAutomount {
			opts += "," + ESPAutomountOpts
		}
		ps = append(ps, PartSpec{Label: "ESP", Size: s.ESPSize, Role: RoleESP, Type: parttype.ESP, FS: "vfat", Mount: "/boot/efi", MountOpts: opts})
	}
	return append(ps, PartSpec{Label: "root", Role: RoleRoot, Type: parttype.Root, FS: "ext4", Mount: "/", MountOpts: "errors=remount-ro"})
}

// PartSpecs are the partitions s lays out: those declared, else the
// default layout.
func (s Spec) PartSpecs() []PartSpec {
	if s.Partitions != nil {
		return s.Partitions
	}
	return s.DefaultPartitions()
}

// Plan places the partitions on the disk, 1 MiB aligned, and derives every identifier.
func Plan(s Spec) (*Layout, error) {
	if s.Table != platform.GPT && s.Table != platform.MBR {
		return nil, fmt.Errorf("unknown partition table %q", s.Table)
	}
	if s.Firmware == "" {
		s.Firmware = platform.UEFI
	}
	parts := s.PartSpecs()
	if err := Check(s.Table, s.Firmware, parts); err != nil {
		return nil, err
	}
	size := alignUp(s.Size, MiB)
	l := &Layout{Size: size, Table: s.Table, Firmware: s.Firmware, DiskGUID: strings.ToUpper(s.IDs.UUID("disk")), Signature: s.IDs.Uint32("mbr-signature")}
	if s.DiskGUID != "" {
		l.DiskGUID = strings.ToUpper(s.DiskGUID)
	}
	if s.Signature != 0 {
		l.Signature = s.Signature
	}
	end := size
	if s.Table == platform.GPT {
		end -= gptBackup
	}
	var fixed uint64
	for _, p := range parts {
		fixed += alignUp(p.Size, MiB)
	}
	if firstLBA+fixed > end {
		return nil, fmt.Errorf("the partitions need %d MiB but the disk has %d MiB for them; raise disk.size", (firstLBA+fixed)/MiB, end/MiB)
	}
	rest := end - firstLBA - fixed
	start := uint64(firstLBA)
	for i, p := range parts {
		sz := alignUp(p.Size, MiB)
		if p.Size == 0 {
			sz = rest / MiB * MiB
			if sz < MiB {
				return nil, fmt.Errorf("partition %q (size \"rest\") has no room left; raise disk.size", p.Label)
			}
		}
		part := Partition{
			Number: i + 1, Role: p.Role, Label: p.Label, Type: p.Type, Start: start, Size: sz,
			FS: p.FS, Mount: p.Mount, MountOpts: p.MountOpts,
			GUID: strings.ToUpper(s.IDs.UUID(fmt.Sprintf("part-%d-%s", i+1, p.Label))),
		}
		if p.GUID != "" {
			part.GUID = strings.ToUpper(p.GUID)
		}
		switch p.FS {
		case "vfat":
			part.VolumeID = s.IDs.Uint32("vfat-" + p.Label)
			if p.FSUUID != "" {
				v, err := strconv.ParseUint(strings.ReplaceAll(p.FSUUID, "-", ""), 16, 32)
				if err != nil {
					return nil, fmt.Errorf("partition %q: %q is not a FAT volume ID (XXXX-XXXX)", p.Label, p.FSUUID)
				}
				part.VolumeID = uint32(v)
			}
			part.FSUUID = fmt.Sprintf("%04X-%04X", part.VolumeID>>16, part.VolumeID&0xffff)
		case "ext4", "swap":
			part.FSUUID = s.IDs.UUID("fs-" + p.Label)
			if p.FSUUID != "" {
				part.FSUUID = strings.ToLower(p.FSUUID)
			}
		}
		switch {
		case p.Mount == "/":
			part.FsckPass = 1
		case p.FS == "ext4" || p.FS == "vfat":
			if p.Mount != "" {
				part.FsckPass = 2
			}
		}
		// BIOS boots from the MBR's code; some firmware wants an active partition.
		part.Bootable = s.Table == platform.MBR && (p.Mount == "/boot" || (p.Mount == "/" && !hasMount(parts, "/boot")))
		l.Partitions = append(l.Partitions, part)
		start += sz
	}
	return l, nil
}

func hasMount(ps []PartSpec, m string) bool {
	for _, p := range ps {
		if p.Mount == m {
			return true
		}
	}
	return false
}

// Check reports a layout that cannot boot or cannot be written. The recipe
// package runs the same rules with source positions; this is the last line
// of defence for callers that build a Spec by hand.
func Check(t platform.Table, f platform.Firmware, parts []PartSpec) error {
	if t == platform.MBR && len(parts) > 4 {
		return fmt.Errorf("an MBR holds at most 4 primary partitions, the layout has %d", len(parts))
	}
	rests, roots := 0, 0
	for _, p := range parts {
		if p.Size == 0 {
			rests++
		}
		if p.Mount == "/" {
			roots++
		}
		if p.Role == RoleBIOS && t != platform.GPT {
			return fmt.Errorf("a BIOS boot partition exists only on GPT; on MBR GRUB uses the gap before the first partition")
		}
	}
	if rests > 1 {
		return fmt.Errorf("only one partition may take the rest of the disk")
	}
	if roots != 1 {
		return fmt.Errorf("the layout needs exactly one partition mounted at /, it has %d", roots)
	}
	if f.HasUEFI() && findRole(parts, RoleESP) == nil {
		return fmt.Errorf("booting under UEFI needs an EFI system partition (type esp, vfat)")
	}
	if t == platform.GPT && f.HasBIOS() && findRole(parts, RoleBIOS) == nil {
		return fmt.Errorf("legacy BIOS on GPT needs a BIOS boot partition (type bios, 1MiB)")
	}
	return nil
}

func findRole(ps []PartSpec, r Role) *PartSpec {
	for i := range ps {
		if ps[i].Role == r {
			return &ps[i]
		}
	}
	return nil
}

// Find returns the first partition with the role, or nil.
func (l *Layout) Find(r Role) *Partition {
	for i := range l.Partitions {
		if l.Partitions[i].Role == r {
			return &l.Partitions[i]
		}
	}
	return nil
}

// Mounted returns the partition mounted at m, or nil.
func (l *Layout) Mounted(m string) *Partition {
	for i := range l.Partitions {
		if l.Partitions[i].Mount == m {
			return &l.Partitions[i]
		}
	}
	return nil
}

// Root returns the partition mounted at /.
func (l *Layout) Root() *Partition { return l.Mounted("/") }

// Fstab renders /etc/fstab for the layout, referencing filesystems by UUID.
func (l *Layout) Fstab() string {
	var b strings.Builder
	b.WriteString("# /etc/fstab: written by kiln from the image's partition layout\n")
	b.WriteString("# <file system>\t<mount point>\t<type>\t<options>\t<dump>\t<pass>\n")
	for _, p := range l.Partitions {
		switch {
		case p.FS == "swap":
			fmt.Fprintf(&b, "UUID=%s\tnone\tswap\tsw\t0\t0\n", p.FSUUID)
		case p.Mount != "" && p.FS != "":
			opts := "defaults"
			if p.MountOpts != "" {
				opts += "," + p.MountOpts
			}
			fmt.Fprintf(&b, "UUID=%s\t%s\t%s\t%s\t0\t%d\n", p.FSUUID, p.Mount, p.FS, opts, p.FsckPass)
		}
	}
	return b.String()
}

func alignUp(v, a uint64) uint64 { return (v + a - 1) / a * a }
