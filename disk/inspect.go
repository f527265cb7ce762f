package disk

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf16"

	"github.com/kiln-build/kiln/internal/parttype"
)

// Found is a partition read back from a disk image's partition table.
type Found struct {
	Number   int
	Start    uint64 // bytes
	Size     uint64 // bytes
	TypeGUID string // GPT, upper case; "" on MBR
	TypeMBR  byte   // MBR; 0 on GPT
	Name     string // GPT partition name
	FS       string // "ext4" (any ext2/3/4), "vfat", "swap" or "" (unknown)
	FSLabel  string
}

// Inspected is what Inspect reads from a disk image.
type Inspected struct {
	Table      string // "gpt" or "mbr"
	Partitions []Found
}

// ErrNoRoot is returned by Inspected.Root when no partition holds an ext4
// filesystem.
var ErrNoRoot = errors.New("no partition holds an ext2/3/4 filesystem that could be the root")

// Inspect reads the GPT or MBR partition table of a virtual disk of size
// bytes and identifies each partition's filesystem by its superblock. It
// reads only: any disk image, including one that another tool made and one
// that is hostile, is safe to give it. Logical partitions inside an MBR
// extended partition are not read.
func Inspect(r io.ReaderAt, size int64) (*Inspected, error) {
	mbr := make([]byte, 512)
	if _, err := r.ReadAt(mbr, 0); err != nil {
		return nil, fmt.Errorf("reading the MBR: %w", err)
	}
	if mbr[510] != 0x55 || mbr[511] != 0xAA {
		return nil, errors.New("no partition table: sector 0 does not end with the 55 AA boot signature")
	}
	var in *Inspected
	var err error
	if isProtective(mbr) {
		in, err = readGPT(r, size)
	} else {
		in, err = readMBR(mbr, size)
	}
	if err != nil {
		return nil, err
	}
	for i := range in.Partitions {
		p := &in.Partitions[i]
		p.FS, p.FSLabel = probeFS(r, p.Start, p.Size)
	}
	return in, nil
}

func isProtective(mbr []byte) bool {
	for i := 0; i < 4; i++ {
		if mbr[446+16*i+4] == 0xEE {
			return true
		}
	}
	return false
}

func readMBR(mbr []byte, size int64) (*Inspected, error) {
	in := &Inspected{Table: "mbr"}
	for i := 0; i < 4; i++ {
		e := mbr[446+16*i : 446+16*(i+1)]
		typ := e[4]
		start := uint64(binary.LittleEndian.Uint32(e[8:])) * SectorSize
		n := uint64(binary.LittleEndian.Uint32(e[12:])) * SectorSize
		if typ == 0 || n == 0 || typ == 0x05 || typ == 0x0F || typ == 0x85 {
			continue
		}
		if start+n > uint64(size) {
			return nil, fmt.Errorf("MBR partition %d ends at byte %d, beyond the disk's %d bytes", i+1, start+n, size)
		}
		in.Partitions = append(in.Partitions, Found{Number: i + 1, Start: start, Size: n, TypeMBR: typ})
	}
	return in, nil
}

func readGPT(r io.ReaderAt, size int64) (*Inspected, error) {
	h := make([]byte, 92)
	if _, err := r.ReadAt(h, SectorSize); err != nil {
		return nil, fmt.Errorf("reading the GPT header: %w", err)
	}
	if string(h[:8]) != "EFI PART" {
		return nil, errors.New("the protective MBR announces a GPT, but LBA 1 holds no GPT header")
	}
	entriesLBA := binary.LittleEndian.Uint64(h[72:])
	count := binary.LittleEndian.Uint32(h[80:])
	entSize := binary.LittleEndian.Uint32(h[84:])
	if entSize < 128 || entSize > 4096 || count > 1024 || entriesLBA > uint64(size)/SectorSize {
		return nil, fmt.Errorf("the GPT header is implausible (%d entries of %d bytes at LBA %d)", count, entSize, entriesLBA)
	}
	if end := entriesLBA*SectorSize + uint64(count)*uint64(entSize); end > uint64(size) {
		return nil, fmt.Errorf("the GPT entry table (%d entries of %d bytes at LBA %d) ends at byte %d, beyond the disk's %d bytes", count, entSize, entriesLBA, end, size)
	}
	ents := make([]byte, int(count)*int(entSize))
	if _, err := r.ReadAt(ents, int64(entriesLBA*SectorSize)); err != nil {
		return nil, fmt.Errorf("reading the GPT entries: %w", err)
	}
	in := &Inspected{Table: "gpt"}
	for i := 0; i < int(count); i++ {
		e := ents[i*int(entSize) : (i+1)*int(entSize)]
		if bytes.Equal(e[:16], make([]byte, 16)) {
			continue
		}
		first, last := binary.LittleEndian.Uint64(e[32:]), binary.LittleEndian.Uint64(e[40:])
		if last < first || (last+1)*SectorSize > uint64(size) {
			return nil, fmt.Errorf("GPT partition %d spans LBA %d to %d, outside the disk's %d bytes", i+1, first, last, size)
		}
		in.Partitions = append(in.Partitions, Found{
			Number: i + 1, Start: first * SectorSize, Size: (last - first + 1) * SectorSize,
			TypeGUID: guidString(e[:16]), Name: utf16Name(e[56:128]),
		})
	}
	return in, nil
}

// guidString formats a GPT's mixed-endian GUID.
func guidString(b []byte) string {
	return strings.ToUpper(fmt.Sprintf("%08x-%04x-%04x-%x-%x",
		binary.LittleEndian.Uint32(b[0:]), binary.LittleEndian.Uint16(b[4:]), binary.LittleEndian.Uint16(b[6:]), b[8:10], b[10:16]))
}

func utf16Name(b []byte) string {
	u := make([]uint16, 0, len(b)/2)
	for i := 0; i+1 < len(b); i += 2 {
		c := binary.LittleEndian.Uint16(b[i:])
		if c == 0 {
			break
		}
		u = append(u, c)
	}
	return string(utf16.Decode(u))
}

// probeFS names the filesystem at off by its superblock.
func probeFS(r io.ReaderAt, off, size uint64) (fs, label string) {
	b := make([]byte, 4096)
	if size < uint64(len(b)) {
		return "", ""
	}
	if _, err := r.ReadAt(b, int64(off)); err != nil && !errors.Is(err, io.EOF) {
		return "", ""
	}
	switch {
	case b[1024+56] == 0x53 && b[1024+57] == 0xEF:
		return "ext4", cString(b[1024+120 : 1024+136])
	case string(b[82:87]) == "FAT32" || string(b[54:57]) == "FAT":
		if string(b[82:87]) == "FAT32" {
			return "vfat", strings.TrimSpace(string(b[71:82]))
		}
		return "vfat", strings.TrimSpace(string(b[43:54]))
	case string(b[4086:4096]) == "SWAPSPACE2":
		return "swap", cString(b[1024+28 : 1024+44])
	}
	return "", ""
}

func cString(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

// Root picks the partition that most likely holds the root filesystem: an
// ext4 partition with the GPT root (x86-64) type, else one named or
// labelled "root" (or Debian's cloud images' "rootfs"), else the largest
// ext4 partition.
func (in *Inspected) Root() (Found, error) {
	var best *Found
	for i := range in.Partitions {
		p := &in.Partitions[i]
		if p.FS != "ext4" {
			continue
		}
		if strings.EqualFold(p.TypeGUID, parttype.Root.GUID) {
			return *p, nil
		}
		if best == nil || p.Size > best.Size {
			best = p
		}
	}
	for _, p := range in.Partitions {
		if p.FS == "ext4" && (isRootName(p.Name) || isRootName(p.FSLabel)) {
			return p, nil
		}
	}
	if best == nil {
		return Found{}, ErrNoRoot
	}
	return *best, nil
}

func isRootName(s string) bool {
	s = strings.ToLower(s)
	return s == "root" || s == "rootfs" || s == "/"
}
