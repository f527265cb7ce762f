package bootloader

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/kiln-build/kiln/internal/fsroot"
)

// BIOSModules are built into GRUB's core.img for legacy BIOS boots.
var BIOSModules = []string{
	"biosdisk", "part_gpt", "part_msdos", "ext2", "search", "search_fs_uuid", "normal", "linux",
	"serial", "terminal", "configfile", "echo", "test", "gzio", "boot", "reboot", "halt",
}

// Offsets in GRUB's i386-pc boot.img (grub-core/boot/i386/pc/boot.S) and
// diskboot.img, the first sector of core.img.
const (
	mbrCodeSize      = 440   // boot code; then the disk signature (4), 2 reserved bytes, partition table, 0x55AA
	bootKernelSector = 0x5C  // u64 LBA of core.img's first sector
	bootDrive        = 0x64  // boot drive; 0xFF = use the drive the BIOS booted from
	blocklistOffset  = 0x1F4 // last 12 bytes of diskboot.img: u64 start, u16 count, u16 segment
	coreLoadSegment  = 0x820
	sectorSize       = 512
)

// CoreImage runs the tree's grub-mkimage for i386-pc and returns core.img.
func CoreImage(ctx context.Context, tree string, c Config, log io.Writer) ([]byte, error) {
	core, err := mkimage(ctx, tree, mkimageJob{format: "i386-pc", modules: BIOSModules, early: earlyConfig(c), prefix: c.BootPrefix + "/grub"}, log)
	if err != nil {
		return nil, err
	}
	if len(core)%sectorSize != 0 {
		pad := make([]byte, sectorSize-len(core)%sectorSize)
		core = append(core, pad...)
	}
	return core, nil
}

// BootImage reads the tree's boot.img.
func BootImage(tree string) ([]byte, error) {
	b, err := fsroot.ReadFile(tree, "/usr/lib/grub/i386-pc/boot.img")
	if err != nil {
		return nil, fmt.Errorf("reading GRUB's boot.img from the tree (is grub-pc-bin installed in the base?): %w", err)
	}
	if len(b) != sectorSize {
		return nil, fmt.Errorf("GRUB's boot.img is %d bytes, expected %d", len(b), sectorSize)
	}
	return b, nil
}

// EmbedBIOS installs GRUB for legacy BIOS into a raw image: core.img at
// coreLBA (a BIOS boot partition, or the gap after the MBR) and boot.img's
// code in the MBR, pointing at it. The MBR's disk signature, partition table
// and boot signature are kept. room is the number of sectors available at
// coreLBA.
func EmbedBIOS(w io.WriterAt, r io.ReaderAt, bootImg, coreImg []byte, coreLBA, room uint64) error {
	if len(bootImg) != sectorSize {
		return errors.New("boot.img must be one sector")
	}
	if len(coreImg) < sectorSize || len(coreImg)%sectorSize != 0 {
		return fmt.Errorf("core.img is %d bytes, not a whole number of sectors", len(coreImg))
	}
	sectors := uint64(len(coreImg) / sectorSize)
	if sectors > room {
		return fmt.Errorf("GRUB's core.img needs %d sectors but only %d are available at LBA %d", sectors, room, coreLBA)
	}
	if sectors-1 > 0xFFFF {
		return fmt.Errorf("core.img of %d sectors is too large for one blocklist entry", sectors)
	}
	core := PatchCore(coreImg, coreLBA)
	if _, err := w.WriteAt(core, int64(coreLBA*sectorSize)); err != nil {
		return fmt.Errorf("writing core.img: %w", err)
	}
	mbr := make([]byte, sectorSize)
	if _, err := r.ReadAt(mbr, 0); err != nil {
		return fmt.Errorf("reading the MBR: %w", err)
	}
	PatchMBR(mbr, bootImg, coreLBA)
	if _, err := w.WriteAt(mbr, 0); err != nil {
		return fmt.Errorf("writing the MBR: %w", err)
	}
	return nil
}

// PatchMBR copies boot.img's code into mbr (440 bytes) and points it at core.img.
func PatchMBR(mbr, bootImg []byte, coreLBA uint64) {
	copy(mbr[:mbrCodeSize], bootImg[:mbrCodeSize])
	binary.LittleEndian.PutUint64(mbr[bootKernelSector:], coreLBA)
	mbr[bootDrive] = 0xFF
}

// PatchCore returns a copy of core.img whose first sector's blocklist loads
// the rest of it: start = coreLBA+1, count = sectors-1, segment 0x820.
func PatchCore(coreImg []byte, coreLBA uint64) []byte {
	core := append([]byte(nil), coreImg...)
	sectors := uint64(len(core) / sectorSize)
	binary.LittleEndian.PutUint64(core[blocklistOffset:], coreLBA+1)
	binary.LittleEndian.PutUint16(core[blocklistOffset+8:], uint16(sectors-1))
	binary.LittleEndian.PutUint16(core[blocklistOffset+10:], coreLoadSegment)
	return core
}

// EmbedBIOSFile is EmbedBIOS on a file path.
func EmbedBIOSFile(path string, bootImg, coreImg []byte, coreLBA, room uint64) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := EmbedBIOS(f, f, bootImg, coreImg, coreLBA, room); err != nil {
		return err
	}
	return f.Sync()
}
