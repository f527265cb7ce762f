package fat32

import (
	"encoding/binary"
	"time"
)

const (
	dirEntrySize = 32
	// maxDirEntries is the most entries a FAT directory may have (2 MiB).
	maxDirEntries = 65536

	attrVolumeID  = 0x08
	attrDirectory = 0x10
	attrArchive   = 0x20
	attrLongName  = 0x0F
)

var (
	dotName    = makeShort(".", "")
	dotDotName = makeShort("..", "")
)

// stamp is a timestamp in FAT's encoding.
type stamp struct {
	date, time uint16
	tenth      uint8 // creation time: hundredths of a second, 0..199
}

var (
	minStamp = time.Date(1980, 1, 1, 0, 0, 0, 0, time.UTC)
	maxStamp = time.Date(2107, 12, 31, 23, 59, 59, 0, time.UTC)
)

// fatStamp encodes t as UTC wall-clock time (FAT has no time zone; UTC
// keeps the output independent of the host's TZ). The zero time means
// 1980-01-01, and times outside FAT's range 1980..2107 are clamped.
func fatStamp(t time.Time) stamp {
	t = t.UTC()
	if t.IsZero() || t.Before(minStamp) {
		t = minStamp
	}
	if t.After(maxStamp) {
		t = maxStamp
	}
	return stamp{
		date:  uint16(t.Year()-1980)<<9 | uint16(t.Month())<<5 | uint16(t.Day()),
		time:  uint16(t.Hour())<<11 | uint16(t.Minute())<<5 | uint16(t.Second()/2),
		tenth: uint8(t.Second()%2*100 + t.Nanosecond()/10_000_000),
	}
}

// shortEntry encodes a short (8.3) directory entry.
func shortEntry(name shortName, attr byte, cluster, size uint32, ts stamp) [dirEntrySize]byte {
	var e [dirEntrySize]byte
	le := binary.LittleEndian
	copy(e[0:11], name[:])
	e[11] = attr
	// 12: reserved for Windows NT (case flags), 0.
	e[13] = ts.tenth
	le.PutUint16(e[14:], ts.time) // creation
	le.PutUint16(e[16:], ts.date)
	le.PutUint16(e[18:], ts.date) // last access
	le.PutUint16(e[20:], uint16(cluster>>16))
	le.PutUint16(e[22:], ts.time) // last write
	le.PutUint16(e[24:], ts.date)
	le.PutUint16(e[26:], uint16(cluster))
	le.PutUint32(e[28:], size)
	return e
}

// dirPlan is a directory being written: its entries and its clusters.
type dirPlan struct {
	path    string
	parent  *dirPlan // nil for the root
	items   []*item  // sorted by name
	first   uint32   // first cluster
	nClus   uint32   // clusters in its chain
	entries int      // 32-byte entries, including ".", ".." or the label
}

// item is one named entry of a directory: a subdirectory or a file.
type item struct {
	name  string
	dname dirName
	dir   *dirPlan // subdirectories only

	// Files.
	path     string // in the filesystem, for error messages
	hostPath string
	fromHost bool
	data     []byte
	size     uint32
	first    uint32 // first cluster, 0 for an empty file
	nClus    uint32
}

// firstCluster is the cluster an entry for it points to.
func (it *item) firstCluster() uint32 {
	if it.dir != nil {
		return it.dir.first
	}
	return it.first
}

// countEntries returns the number of directory entries d needs.
func (d *dirPlan) countEntries(hasLabel bool) int {
	n := 2 // "." and ".."
	if d.parent == nil {
		n = 0
		if hasLabel {
			n = 1
		}
	}
	for _, it := range d.items {
		n++
		if it.dname.long {
			n += (utf16Len(it.name) + 12) / 13
		}
	}
	return n
}

// encode returns the directory's clusters: its entries followed by zeros,
// which mark the end of the directory.
func (d *dirPlan) encode(clusterSize int64, label *shortName, ts stamp) []byte {
	buf := make([]byte, 0, int64(d.nClus)*clusterSize)
	put := func(e [dirEntrySize]byte) { buf = append(buf, e[:]...) }
	if d.parent == nil {
		if label != nil {
			put(shortEntry(*label, attrVolumeID, 0, 0, ts))
		}
	} else {
		put(shortEntry(dotName, attrDirectory, d.first, 0, ts))
		// ".." of a directory in the root points to cluster 0, not to the
		// root's real cluster: that is what the specification requires.
		parent := uint32(0)
		if d.parent.parent != nil {
			parent = d.parent.first
		}
		put(shortEntry(dotDotName, attrDirectory, parent, 0, ts))
	}
	for _, it := range d.items {
		if it.dname.long {
			for _, e := range longEntries(it.name, it.dname.short.checksum()) {
				put(e)
			}
		}
		if it.dir != nil {
			put(shortEntry(it.dname.short, attrDirectory, it.dir.first, 0, ts))
		} else {
			put(shortEntry(it.dname.short, attrArchive, it.first, it.size, ts))
		}
	}
	return buf[:cap(buf)]
}
