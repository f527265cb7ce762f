package qcow2

// qcow2 reader: versions 2 and 3, normal, compressed and zero clusters.
// Everything read from the file is checked before use, so a malformed file
// gives a *image.FormatError: offsets must lie inside the file and tables must fit
// in it, which also bounds every allocation by the file's size.

import (
	"bytes"
	"compress/flate"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"slices"
	"sync"

	"github.com/kiln-build/kiln/formats/image"
	"github.com/kiln-build/kiln/formats/internal/blocks"
	"github.com/kiln-build/kiln/internal/sparse"
)

// Incompatible feature bits (v3).
const (
	qcow2FeatDirty      = 1 << 0 // refcounts may be stale: harmless for reading
	qcow2FeatCorrupt    = 1 << 1
	qcow2FeatDataFile   = 1 << 2
	qcow2FeatCompType   = 1 << 3
	qcow2FeatExtendedL2 = 1 << 4
)

type qcow2Image struct {
	r        io.ReaderAt
	closer   io.Closer
	fileSize int64
	cbits    uint
	csize    int64
	size     int64   // virtual size
	l1       []int64 // L2 table offset of each L1 entry that maps the disk; 0: none

	mu      sync.Mutex
	l2Cache [16]struct {
		off int64
		tab []byte
	}
	l2Next   int
	inflated image.LastPiece // the compressed guest cluster read last
}

// Open reads a qcow2 (v2 or v3) file as a virtual disk.
func Open(path string) (image.Image, error) {
	return image.Open(path, func(f *os.File, size int64) (*qcow2Image, error) { return qcow2Open(f, size, f) })
}

func qcow2Bad(format string, a ...any) error { return image.Errorf("qcow2", format, a...) }

func qcow2Unsupported(what string) error {
	return fmt.Errorf("qcow2: %w: %s", image.ErrUnsupported, what)
}

// qcow2Open reads the metadata of a qcow2 file held in r (fileSize bytes);
// the image's Close closes closer, if any.
func qcow2Open(r io.ReaderAt, fileSize int64, closer io.Closer) (*qcow2Image, error) {
	be := binary.BigEndian
	if fileSize < 72 {
		return nil, qcow2Bad("file too small (%d bytes)", fileSize)
	}
	h := make([]byte, min(fileSize, 105))
	if err := image.ReadFull(r, h, 0, "qcow2", "header"); err != nil {
		return nil, err
	}
	if be.Uint32(h) != qcow2Magic {
		return nil, qcow2Bad("bad magic")
	}
	version := be.Uint32(h[4:])
	if version != 2 && version != 3 {
		return nil, qcow2Bad("unknown version %d", version)
	}
	cbits := be.Uint32(h[20:])
	if cbits < 9 || cbits > 21 {
		return nil, qcow2Bad("cluster_bits %d out of range 9..21", cbits)
	}
	csize := int64(1) << cbits
	if off := be.Uint64(h[8:]); off != 0 {
		return nil, qcow2Backing(r, fileSize, off, be.Uint32(h[16:]))
	}
	if be.Uint32(h[32:]) != 0 {
		return nil, qcow2Unsupported("encryption")
	}
	if version == 3 {
		if len(h) < 104 {
			return nil, qcow2Bad("file too small for a v3 header")
		}
		feat := be.Uint64(h[72:])
		hlen := int64(be.Uint32(h[100:]))
		if hlen < 104 || hlen > csize || hlen > fileSize {
			return nil, qcow2Bad("header length %d", hlen)
		}
		compType := byte(0)
		if hlen > 104 {
			compType = h[104]
		}
		switch {
		case feat&qcow2FeatDataFile != 0:
			return nil, qcow2Unsupported("external data file")
		case feat&qcow2FeatExtendedL2 != 0:
			return nil, qcow2Unsupported("extended L2 entries")
		case feat&^(qcow2FeatDirty|qcow2FeatCorrupt|qcow2FeatCompType) != 0:
			return nil, qcow2Unsupported(fmt.Sprintf("incompatible features %#x", feat))
		case feat&qcow2FeatCorrupt != 0:
			return nil, qcow2Bad("image is marked corrupt")
		case (feat&qcow2FeatCompType != 0) != (compType != 0):
			return nil, qcow2Bad("compression type %d does not match the feature bit", compType)
		case compType != 0:
			return nil, qcow2Unsupported(fmt.Sprintf("compression type %d", compType))
		}
		if order := be.Uint32(h[96:]); order > 6 {
			return nil, qcow2Bad("refcount_order %d", order)
		}
	}

	// The L1 table must cover the virtual size and lie inside the file.
	size := be.Uint64(h[24:])
	if err := image.CheckVirtualSize("qcow2", size); err != nil {
		return nil, err
	}
	cover := uint64(1) << (2*cbits - 3) // guest bytes per L2 table
	need := size / cover
	if size%cover != 0 {
		need++
	}
	l1Size := uint64(be.Uint32(h[36:]))
	l1Off := be.Uint64(h[40:])
	switch {
	case l1Size > qcow2MaxL1:
		return nil, qcow2Bad("L1 table of %d entries", l1Size)
	case l1Size < need:
		return nil, qcow2Bad("L1 table of %d entries for a %d-byte disk", l1Size, size)
	case need > 0 && (l1Off%uint64(csize) != 0 || l1Off > uint64(fileSize) || l1Size*8 > uint64(fileSize)-l1Off):
		return nil, qcow2Bad("L1 table at %d outside the file", l1Off)
	}
	q := &qcow2Image{r: r, closer: closer, fileSize: fileSize, cbits: uint(cbits), csize: csize, size: int64(size)}
	raw := make([]byte, need*8)
	if err := image.ReadFull(r, raw, int64(l1Off), "qcow2", "L1 table"); err != nil {
		return nil, err
	}
	q.l1 = make([]int64, need)
	for i := range q.l1 {
		off := int64(be.Uint64(raw[8*i:]) & qcow2OffsetMask)
		if off != 0 && (off%csize != 0 || off > fileSize-csize) {
			return nil, qcow2Bad("L1 entry %d: L2 table at %d", i, off)
		}
		q.l1[i] = off
	}
	// Two guest ranges never share an L2 table; refusing it bounds the work
	// of Extents by the file size.
	offs := slices.DeleteFunc(slices.Clone(q.l1), func(o int64) bool { return o == 0 })
	slices.Sort(offs)
	for i := 1; i < len(offs); i++ {
		if offs[i] == offs[i-1] {
			return nil, qcow2Bad("L2 table at %d used twice", offs[i])
		}
	}
	return q, nil
}

// qcow2Backing refuses an image with a backing file, naming it when the
// header's pointer to the name lies inside the file: Kiln never opens
// another file on an image's say (a backing chain may lead anywhere, or
// loop).
func qcow2Backing(r io.ReaderAt, fileSize int64, off uint64, n uint32) error {
	name := ""
	if n > 0 && n <= 1023 && off < uint64(fileSize) && uint64(n) <= uint64(fileSize)-off {
		b := make([]byte, n)
		if image.ReadFull(r, b, int64(off), "qcow2", "backing file name") == nil {
			name = fmt.Sprintf(" %q", b)
		}
	}
	return qcow2Unsupported("backing file" + name + ": Kiln reads standalone images only and never opens the file an image names; merge the chain first (qemu-img convert -O qcow2 IN OUT)")
}

func (q *qcow2Image) Size() int64       { return q.size }
func (q *qcow2Image) Format() string    { return "qcow2" }
func (q *qcow2Image) Subformat() string { return "" }

func (q *qcow2Image) Close() error {
	if q.closer == nil {
		return nil
	}
	return q.closer.Close()
}

// l2Table returns the L2 table at off (checked at open).
func (q *qcow2Image) l2Table(off int64) ([]byte, error) {
	q.mu.Lock()
	for _, c := range q.l2Cache {
		if c.off == off && c.tab != nil {
			q.mu.Unlock()
			return c.tab, nil
		}
	}
	q.mu.Unlock()
	tab := make([]byte, q.csize)
	if err := image.ReadFull(q.r, tab, off, "qcow2", "L2 table"); err != nil {
		return nil, err
	}
	q.mu.Lock()
	q.l2Cache[q.l2Next].off, q.l2Cache[q.l2Next].tab = off, tab
	q.l2Next = (q.l2Next + 1) % len(q.l2Cache)
	q.mu.Unlock()
	return tab, nil
}

// Kinds of guest cluster.
const (
	qcow2Zero = iota // unallocated or zero flag
	qcow2Data
	qcow2Deflated
)

// cluster looks up guest cluster g: its kind, host offset and, for a
// compressed one, the length of its compressed bytes inside the file.
func (q *qcow2Image) cluster(g int64) (kind int, host, n int64, err error) {
	per := q.csize / 8
	l2 := q.l1[g/per]
	if l2 == 0 {
		return qcow2Zero, 0, 0, nil
	}
	tab, err := q.l2Table(l2)
	if err != nil {
		return 0, 0, 0, err
	}
	return q.entry(binary.BigEndian.Uint64(tab[8*(g%per):]), g)
}

func (q *qcow2Image) entry(e uint64, g int64) (kind int, host, n int64, err error) {
	if e&qcow2Compressed != 0 {
		x := 62 - (q.cbits - 8)
		off := e & (1<<x - 1)
		sectors := int64(e>>x) & (1<<(q.cbits-8) - 1)
		if off >= uint64(q.fileSize) {
			return 0, 0, 0, qcow2Bad("guest cluster %d: compressed data at %d outside the file", g, off)
		}
		host = int64(off)
		n = min((sectors+1)*512-host&511, q.fileSize-host)
		return qcow2Deflated, host, n, nil
	}
	host = int64(e & qcow2OffsetMask)
	switch {
	case e&qcow2ZeroFlag != 0:
		return qcow2Zero, 0, 0, nil
	case host == 0 && e&qcow2Copied == 0:
		return qcow2Zero, 0, 0, nil
	case host == 0 || host%q.csize != 0 || host >= q.fileSize:
		return 0, 0, 0, qcow2Bad("guest cluster %d: data at %d", g, host)
	}
	return qcow2Data, host, 0, nil
}

// ReadAt reads the virtual disk.
func (q *qcow2Image) ReadAt(p []byte, off int64) (int, error) {
	return image.ReadPieces(p, off, q.size, q.csize, "qcow2", q.readCluster)
}

// readCluster fills b from guest cluster g at offset in.
func (q *qcow2Image) readCluster(b []byte, g, in int64) error {
	kind, host, n, err := q.cluster(g)
	if err != nil {
		return err
	}
	switch kind {
	case qcow2Data:
		// A last cluster cut short by the end of the file reads as zeros past it.
		k := int(max(0, min(int64(len(b)), q.fileSize-host-in)))
		clear(b[k:])
		return image.ReadFull(q.r, b[:k], host+in, "qcow2", "data cluster")
	case qcow2Deflated:
		data, err := q.inflate(g, host, n)
		if err != nil {
			return err
		}
		copy(b, data[in:])
	default:
		clear(b)
	}
	return nil
}

var qcow2Inflaters sync.Pool

// inflate returns guest cluster g, stored compressed in n bytes at off.
func (q *qcow2Image) inflate(g, off, n int64) ([]byte, error) {
	return q.inflated.Get(g, func() ([]byte, error) {
		in := make([]byte, n)
		if err := image.ReadFull(q.r, in, off, "qcow2", "compressed cluster"); err != nil {
			return nil, err
		}
		src := bytes.NewReader(in)
		zr, _ := qcow2Inflaters.Get().(io.ReadCloser)
		if zr == nil {
			zr = flate.NewReader(src)
		} else if err := zr.(flate.Resetter).Reset(src, nil); err != nil {
			return nil, err
		}
		data := make([]byte, q.csize)
		if _, err := io.ReadFull(zr, data); err != nil {
			return nil, qcow2Bad("guest cluster %d: compressed data at %d: %v", g, off, err)
		}
		qcow2Inflaters.Put(zr)
		return data, nil
	})
}

// Extents lists the guest ranges that hold data (normal and compressed
// clusters), merged.
func (q *qcow2Image) Extents() ([]sparse.Extent, error) {
	var out []sparse.Extent
	per := q.csize / 8
	be := binary.BigEndian
	for i, l2 := range q.l1 {
		if l2 == 0 {
			continue
		}
		tab, err := q.l2Table(l2)
		if err != nil {
			return nil, err
		}
		for j := range per {
			g := int64(i)*per + j
			start := g << q.cbits
			if start >= q.size {
				break
			}
			kind, _, _, err := q.entry(be.Uint64(tab[8*j:]), g)
			if err != nil {
				return nil, err
			}
			if kind == qcow2Zero {
				continue
			}
			out = blocks.MergeExtent(out, start, min(q.csize, q.size-start))
		}
	}
	return out, nil
}
