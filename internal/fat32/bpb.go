package fat32

import (
	"encoding/binary"
	"fmt"
)

const (
	sectorSize      = 512
	reservedSectors = 32
	numFATs         = 2
	fsInfoSector    = 1
	backupBoot      = 6 // backup boot sector; its FSInfo copy follows at 7
	mediaFixed      = 0xF8

	// minClusters is the fewest clusters a FAT32 volume may have: with
	// fewer, Windows, UEFI firmware and fsck treat it as FAT16.
	minClusters = 65525
	// maxClusters keeps the highest cluster number below 0x0FFFFFF7 (bad
	// cluster marker).
	maxClusters = 0x0FFFFFF7 - 2

	// MinSize is the smallest size in bytes Write accepts: 32 reserved
	// sectors, two 512-sector FATs and 65525 clusters of 512 bytes.
	MinSize = (reservedSectors + numFATs*512 + minClusters) * sectorSize
	// maxSize is the largest size Write accepts (2 TiB - 512): the boot
	// sector counts sectors in 32 bits.
	maxSize = (1<<32 - 1) * sectorSize
	// MaxFileSize is the largest file FAT32 can hold (4 GiB - 1).
	MaxFileSize = 1<<32 - 1

	eocMark = 0x0FFFFFFF // end of a cluster chain
)

// geometry is the layout of a filesystem: where the FATs and the data
// clusters are. All counts are in sectors unless named otherwise.
type geometry struct {
	totalSectors      uint32
	sectorsPerCluster uint32
	fatSectors        uint32 // per FAT
	clusters          uint32 // data clusters, numbered 2..clusters+1
}

// sectorsPerClusterFor picks the cluster size for a volume of size bytes
// from Microsoft's FAT32 table.
func sectorsPerClusterFor(size int64) uint32 {
	switch {
	case size <= 260<<20:
		return 1
	case size <= 8<<30:
		return 8
	case size <= 16<<30:
		return 16
	case size <= 32<<30:
		return 32
	default:
		return 64
	}
}

// newGeometry lays out a filesystem of size bytes. A trailing partial
// sector, and the sectors after the last whole cluster, stay unused. The
// FAT is the smallest that maps every cluster and makes the data area start
// at a multiple of the cluster size (as mkfs.fat does), so clusters are
// aligned whenever the partition is.
func newGeometry(size int64) (geometry, error) {
	if size < MinSize {
		return geometry{}, tooSmall(size)
	}
	if size/sectorSize > maxSize/sectorSize {
		return geometry{}, fmt.Errorf("fat32: size %d bytes is larger than FAT32's limit of %d bytes (2^32-1 sectors)", size, int64(maxSize))
	}
	spc := uint64(sectorsPerClusterFor(size))
	total := uint64(size / sectorSize)
	avail := total - reservedSectors
	// A FAT of fat sectors maps 128*fat entries; it needs clusters+2 of
	// them. No FAT smaller than this bound can work, and a larger FAT only
	// leaves fewer clusters to map, so scanning upwards finds the smallest.
	fat := (avail + spc) / (128*spc + 2)
	for {
		if numFATs*fat >= avail {
			return geometry{}, tooSmall(size)
		}
		clusters := (avail - numFATs*fat) / spc
		if 128*fat >= clusters+2 && (reservedSectors+numFATs*fat)%spc == 0 {
			if clusters < minClusters {
				return geometry{}, tooSmall(size)
			}
			if clusters > maxClusters {
				return geometry{}, fmt.Errorf("fat32: size %d bytes needs more than %d clusters", size, maxClusters)
			}
			return geometry{
				totalSectors:      uint32(total),
				sectorsPerCluster: uint32(spc),
				fatSectors:        uint32(fat),
				clusters:          uint32(clusters),
			}, nil
		}
		fat++
	}
}

func tooSmall(size int64) error {
	return fmt.Errorf("fat32: size %d bytes is too small: FAT32 needs at least %d clusters, so at least %d bytes (%.2f MiB)",
		size, minClusters, MinSize, float64(MinSize)/(1<<20))
}

func (g geometry) clusterSize() int64 { return int64(g.sectorsPerCluster) * sectorSize }

// fatOffset is the byte offset of FAT number i (0 or 1).
func (g geometry) fatOffset(i int) int64 {
	return (reservedSectors + int64(i)*int64(g.fatSectors)) * sectorSize
}

// clusterOffset is the byte offset of data cluster c (c >= 2).
func (g geometry) clusterOffset(c uint32) int64 {
	return g.fatOffset(numFATs) + int64(c-2)*g.clusterSize()
}

// bootSector encodes the boot sector (BPB and extended BPB).
func (g geometry) bootSector(volumeID uint32, label shortName, hidden uint32) []byte {
	b := make([]byte, sectorSize)
	le := binary.LittleEndian
	copy(b[0:], []byte{0xEB, 0x58, 0x90}) // jmp short 0x5A; nop
	copy(b[3:11], "KILN    ")             // OEM name
	le.PutUint16(b[11:], sectorSize)
	b[13] = byte(g.sectorsPerCluster)
	le.PutUint16(b[14:], reservedSectors)
	b[16] = numFATs
	// 17: root entries, 19: 16-bit sector count, both 0 on FAT32.
	b[21] = mediaFixed
	// 22: 16-bit FAT size, 0 on FAT32.
	le.PutUint16(b[24:], 63)  // sectors per track (only for CHS; conventional)
	le.PutUint16(b[26:], 255) // heads
	le.PutUint32(b[28:], hidden)
	le.PutUint32(b[32:], g.totalSectors)
	le.PutUint32(b[36:], g.fatSectors)
	// 40: flags 0 (FATs mirrored), 42: version 0.0
	le.PutUint32(b[44:], 2) // root directory cluster
	le.PutUint16(b[48:], fsInfoSector)
	le.PutUint16(b[50:], backupBoot)
	// 52..63 reserved
	b[64] = 0x80 // drive number
	b[66] = 0x29 // extended boot signature: the next three fields are valid
	le.PutUint32(b[67:], volumeID)
	copy(b[71:82], label[:])
	copy(b[82:90], "FAT32   ")
	// Boot code at 0x5A, should firmware ever run it: int 18h (try the next
	// boot device), then halt forever.
	copy(b[0x5A:], []byte{0xCD, 0x18, 0xF4, 0xEB, 0xFD})
	b[510], b[511] = 0x55, 0xAA
	return b
}

// fsInfo encodes the FSInfo sector: the free cluster count and the
// allocation hint FSI_Nxt_Free. The hint holds the last allocated cluster:
// that is what Microsoft's FSInfo documentation ("the cluster that was most
// recently allocated"), mkfs.fat, Linux and mtools store, and Linux and
// mtools start their search for a free cluster right after it, so the next
// cluster they allocate is the first free one.
func fsInfo(free, lastAllocated uint32) []byte {
	b := make([]byte, sectorSize)
	le := binary.LittleEndian
	le.PutUint32(b[0:], 0x41615252)   // lead signature "RRaA"
	le.PutUint32(b[484:], 0x61417272) // struct signature "rrAa"
	le.PutUint32(b[488:], free)
	le.PutUint32(b[492:], lastAllocated)
	le.PutUint32(b[508:], 0xAA550000) // trail signature
	return b
}

// reservedArea encodes the 32 reserved sectors: boot sector, FSInfo, their
// backups at sectors 6 and 7, and zeros.
func (g geometry) reservedArea(volumeID uint32, label shortName, hidden, free, lastAllocated uint32) []byte {
	b := make([]byte, reservedSectors*sectorSize)
	boot := g.bootSector(volumeID, label, hidden)
	info := fsInfo(free, lastAllocated)
	copy(b[0:], boot)
	copy(b[fsInfoSector*sectorSize:], info)
	copy(b[backupBoot*sectorSize:], boot)
	copy(b[(backupBoot+1)*sectorSize:], info)
	return b
}
