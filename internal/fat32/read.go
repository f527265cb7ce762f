package fat32

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf16"
)

// Reader reads files from an existing FAT12, FAT16 or FAT32 filesystem
// that any tool may have written (kiln verify reads the EFI system
// partition of images Kiln did not make). It only reads, follows every
// cluster chain with a bound, and treats a hostile filesystem as an error,
// never a panic or an endless loop.
type Reader struct {
	r            io.ReaderAt
	base, size   int64
	bps          int64 // bytes per sector
	clusterSize  int64
	fatStart     int64
	fatBits      int // 12, 16 or 32
	rootStart    int64
	rootEntries  int64 // FAT12/16: entries of the fixed root directory
	rootCluster  uint32
	dataStart    int64
	clusterCount uint32
}

// Entry is one directory entry.
type Entry struct {
	Name string // the long name when there is one
	Dir  bool
	Size uint32

	cluster uint32
}

// ErrNotFAT is returned when the region holds no FAT filesystem.
var ErrNotFAT = errors.New("not a FAT filesystem")

// Open reads the boot sector of the FAT filesystem of size bytes at byte
// offset base of r.
func Open(r io.ReaderAt, base, size int64) (*Reader, error) {
	bs := make([]byte, 512)
	if _, err := r.ReadAt(bs, base); err != nil {
		return nil, fmt.Errorf("reading the boot sector: %w", err)
	}
	if bs[510] != 0x55 || bs[511] != 0xAA {
		return nil, fmt.Errorf("%w: no boot signature", ErrNotFAT)
	}
	bps := int64(binary.LittleEndian.Uint16(bs[11:]))
	spc := int64(bs[13])
	reserved := int64(binary.LittleEndian.Uint16(bs[14:]))
	nfats := int64(bs[16])
	rootEntries := int64(binary.LittleEndian.Uint16(bs[17:]))
	total := int64(binary.LittleEndian.Uint16(bs[19:]))
	if total == 0 {
		total = int64(binary.LittleEndian.Uint32(bs[32:]))
	}
	fatSectors := int64(binary.LittleEndian.Uint16(bs[22:]))
	if fatSectors == 0 {
		fatSectors = int64(binary.LittleEndian.Uint32(bs[36:]))
	}
	switch {
	case bps != 512 && bps != 1024 && bps != 2048 && bps != 4096,
		spc == 0 || spc&(spc-1) != 0, reserved == 0, nfats == 0, fatSectors == 0, total == 0:
		return nil, fmt.Errorf("%w: implausible boot sector", ErrNotFAT)
	}
	f := &Reader{r: r, base: base, size: size, bps: bps, clusterSize: bps * spc, fatStart: reserved * bps, rootEntries: rootEntries}
	rootSectors := (rootEntries*dirEntrySize + bps - 1) / bps
	firstData := reserved + nfats*fatSectors + rootSectors
	if total <= firstData || total*bps > size {
		return nil, fmt.Errorf("%w: the filesystem (%d sectors) does not fit its %d-byte partition", ErrNotFAT, total, size)
	}
	f.clusterCount = uint32((total - firstData) / spc)
	f.dataStart = firstData * bps
	f.rootStart = (reserved + nfats*fatSectors) * bps
	switch {
	case f.clusterCount < 4085:
		f.fatBits = 12
	case f.clusterCount < 65525:
		f.fatBits = 16
	default:
		f.fatBits = 32
		f.rootCluster = binary.LittleEndian.Uint32(bs[44:])
		if f.rootCluster < 2 {
			return nil, fmt.Errorf("%w: root directory cluster %d", ErrNotFAT, f.rootCluster)
		}
	}
	if int64(f.clusterCount+2)*int64(f.fatBits)/8 > fatSectors*bps {
		return nil, fmt.Errorf("%w: the FAT is too small for %d clusters", ErrNotFAT, f.clusterCount)
	}
	return f, nil
}

// next returns the FAT entry of cluster c.
func (f *Reader) next(c uint32) (uint32, error) {
	b := make([]byte, 4)
	switch f.fatBits {
	case 32:
		if _, err := f.r.ReadAt(b, f.base+f.fatStart+int64(c)*4); err != nil {
			return 0, err
		}
		return binary.LittleEndian.Uint32(b) & 0x0FFFFFFF, nil
	case 16:
		if _, err := f.r.ReadAt(b[:2], f.base+f.fatStart+int64(c)*2); err != nil {
			return 0, err
		}
		return uint32(binary.LittleEndian.Uint16(b)), nil
	}
	if _, err := f.r.ReadAt(b[:2], f.base+f.fatStart+int64(c)*3/2); err != nil {
		return 0, err
	}
	v := uint32(binary.LittleEndian.Uint16(b))
	if c%2 == 1 {
		return v >> 4, nil
	}
	return v & 0xFFF, nil
}

// endOfChain reports a FAT entry that ends a chain (or is bad or free).
func (f *Reader) endOfChain(v uint32) bool {
	switch f.fatBits {
	case 32:
		return v >= 0x0FFFFFF7 || v < 2
	case 16:
		return v >= 0xFFF7 || v < 2
	}
	return v >= 0xFF7 || v < 2
}

// chain reads the clusters of a chain starting at c, at most max bytes.
func (f *Reader) chain(c uint32, max int64) ([]byte, error) {
	var out []byte
	for n := uint32(0); !f.endOfChain(c); n++ {
		if c-2 >= f.clusterCount || n > f.clusterCount {
			return nil, fmt.Errorf("%w: cluster chain out of bounds or looping at cluster %d", ErrNotFAT, c)
		}
		buf := make([]byte, f.clusterSize)
		if _, err := f.r.ReadAt(buf, f.base+f.dataStart+int64(c-2)*f.clusterSize); err != nil {
			return nil, err
		}
		out = append(out, buf...)
		if int64(len(out)) >= max {
			return out[:max], nil
		}
		var err error
		if c, err = f.next(c); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// maxDirBytes bounds a directory read (FAT allows 65536 entries).
const maxDirBytes = maxDirEntries * dirEntrySize

// dir reads the entries of the directory at cluster c (0: the root).
func (f *Reader) dir(c uint32) ([]Entry, error) {
	var raw []byte
	if c == 0 && f.fatBits != 32 {
		raw = make([]byte, f.rootEntries*dirEntrySize)
		if _, err := f.r.ReadAt(raw, f.base+f.rootStart); err != nil {
			return nil, err
		}
	} else {
		if c == 0 {
			c = f.rootCluster
		}
		var err error
		if raw, err = f.chain(c, maxDirBytes); err != nil {
			return nil, err
		}
	}
	var out []Entry
	var long []uint16
	for i := 0; i+dirEntrySize <= len(raw); i += dirEntrySize {
		e := raw[i : i+dirEntrySize]
		switch {
		case e[0] == 0x00:
			return out, nil
		case e[0] == 0xE5:
			long = nil
			continue
		case e[11] == attrLongName:
			// Long-name entries come last part first, 13 UTF-16 units each.
			var part []uint16
			for _, off := range []int{1, 3, 5, 7, 9, 14, 16, 18, 20, 22, 24, 28, 30} {
				part = append(part, binary.LittleEndian.Uint16(e[off:]))
			}
			long = append(part, long...)
			continue
		case e[11]&attrVolumeID != 0:
			long = nil
			continue
		}
		name := shortEntryName(e)
		if long != nil {
			for j, u := range long {
				if u == 0 {
					long = long[:j]
					break
				}
			}
			name = string(utf16.Decode(long))
			long = nil
		}
		if name == "." || name == ".." {
			continue
		}
		cluster := uint32(binary.LittleEndian.Uint16(e[26:]))
		if f.fatBits == 32 {
			cluster |= uint32(binary.LittleEndian.Uint16(e[20:])) << 16
		}
		out = append(out, Entry{Name: name, Dir: e[11]&attrDirectory != 0, Size: binary.LittleEndian.Uint32(e[28:]), cluster: cluster})
	}
	return out, nil
}

// shortEntryName is an 8.3 entry's name as "NAME.EXT", in lower case
// where Windows NT's case flags (byte 12) say so, as mtools and Linux write
// "grubx64.efi" without a long name.
func shortEntryName(e []byte) string {
	base := strings.TrimRight(string(e[0:8]), " ")
	if e[0] == 0x05 {
		base = "\xe5" + base[1:]
	}
	ext := strings.TrimRight(string(e[8:11]), " ")
	if e[12]&0x08 != 0 {
		base = strings.ToLower(base)
	}
	if e[12]&0x10 != 0 {
		ext = strings.ToLower(ext)
	}
	if ext == "" {
		return base
	}
	return base + "." + ext
}

// lookup walks a slash-separated path, matching names case-insensitively
// as FAT does.
func (f *Reader) lookup(path string) (Entry, error) {
	cur := Entry{Dir: true}
	for _, part := range strings.Split(strings.Trim(path, "/"), "/") {
		if part == "" {
			continue
		}
		if !cur.Dir {
			return Entry{}, fmt.Errorf("%s: not a directory", path)
		}
		entries, err := f.dir(cur.cluster)
		if err != nil {
			return Entry{}, err
		}
		found := false
		for _, e := range entries {
			if strings.EqualFold(e.Name, part) {
				cur, found = e, true
				break
			}
		}
		if !found {
			return Entry{}, fmt.Errorf("%s: %w", path, errNotExist)
		}
	}
	return cur, nil
}

var errNotExist = errors.New("no such file or directory")

// IsNotExist reports whether err says a path does not exist.
func IsNotExist(err error) bool { return errors.Is(err, errNotExist) }

// ReadDir lists a directory ("" or "/" is the root).
func (f *Reader) ReadDir(path string) ([]Entry, error) {
	e, err := f.lookup(path)
	if err != nil {
		return nil, err
	}
	if !e.Dir {
		return nil, fmt.Errorf("%s: not a directory", path)
	}
	return f.dir(e.cluster)
}

// ReadFile returns a file's content; files larger than max are an error.
func (f *Reader) ReadFile(path string, max int64) ([]byte, error) {
	e, err := f.lookup(path)
	if err != nil {
		return nil, err
	}
	if e.Dir {
		return nil, fmt.Errorf("%s: is a directory", path)
	}
	if int64(e.Size) > max {
		return nil, fmt.Errorf("%s: %d bytes, more than the %d this reader accepts", path, e.Size, max)
	}
	if e.Size == 0 {
		return []byte{}, nil
	}
	data, err := f.chain(e.cluster, int64(e.Size))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if int64(len(data)) < int64(e.Size) {
		return nil, fmt.Errorf("%s: %w: its cluster chain holds %d of its %d bytes", path, ErrNotFAT, len(data), e.Size)
	}
	return data, nil
}
