// Package disk plans and writes a raw disk image: the partition table (with
// go-diskfs), the EFI system partition (with Kiln's FAT32 writer) and the
// ext4 root (with e2fsprogs' `mke2fs -d`, straight into the partition's byte
// offset).
//
// It never uses loop devices and never mounts anything. Sizes are bytes
// (uint64) everywhere; sectors appear only where a table format needs them,
// as the Sector type.
//
// It does not install bootloaders (see package bootloader) and does not
// decide what goes into the tree.
package disk

// SectorSize is the logical sector size of every image Kiln writes.
const SectorSize = 512

// Sector is a logical block address or count, in SectorSize units.
type Sector uint64

// Bytes converts a sector count to bytes.
func (s Sector) Bytes() uint64 { return uint64(s) * SectorSize }

// MiB is the alignment of every partition.
const MiB = 1 << 20

// Role says what a partition is for.
type Role string

const (
	RoleESP  Role = "esp"  // EFI system partition
	RoleBIOS Role = "bios" // GRUB's BIOS boot partition (GPT only)
	RoleRoot Role = "root"
)
