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

// PartType is one partition type in both table formats.
type PartType struct {
	GUID string // GPT partition type GUID
	MBR  byte   // MBR partition type byte; 0 when the type has no MBR form
}

// Partition types, from the UEFI spec and the Discoverable Partitions Specification.
var (
	TypeESP      = PartType{GUID: "C12A7328-F81F-11D2-BA4B-00A0C93EC93B", MBR: 0xEF} // SD_GPT_ESP
	TypeBIOSBoot = PartType{GUID: "21686148-6449-6E6F-744E-656564454649"}            // GRUB BIOS boot
	TypeRootX64  = PartType{GUID: "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709", MBR: 0x83} // SD_GPT_ROOT_X86_64
	TypeLinux    = PartType{GUID: "0FC63DAF-8483-4772-8E79-3D69D8477DE4", MBR: 0x83} // generic Linux data
	TypeSwap     = PartType{GUID: "0657FD6D-A4AB-43C4-84E5-0933C84B4F4F", MBR: 0x82} // SD_GPT_SWAP
)
