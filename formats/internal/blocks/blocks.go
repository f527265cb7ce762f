// Package blocks holds what the block-based formats, VHD and VHDX, share:
// a pipelined walk over the non-zero blocks of a source (EachBlockAsync),
// writing a block while leaving its zero granules as holes (WriteRuns), a
// content digest for deterministic identifiers (ContentHash), and an
// on-demand reader of a block allocation table (Table). Every reader lists
// its extents with MergeExtent.
//
// It knows no file layout; that stays in each format's package.
package blocks

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"os"
	"sync"

	"github.com/kiln-build/kiln/formats/image"
	"github.com/kiln-build/kiln/internal/sparse"
)

const (
	MiB = int64(1) << 20

	// Granule is the granularity of the holes the writers leave inside
	// the blocks they allocate: a run of Granule zero bytes of the source
	// is not written, so it stays a hole in the output file (like qemu-img's
	// default -S 4k).
	Granule = 4096
)

func RoundUp(n, m int64) int64 { return (n + m - 1) / m * m }

// Subformat names the two kinds of VHD and VHDX file: "dynamic" (blocks
// allocated as written) or "fixed" (the whole disk, then the metadata).
func Subformat(dynamic bool) string {
	if dynamic {
		return "dynamic"
	}
	return "fixed"
}

// WriteRuns writes data at off in dst, skipping the Granule-sized
// pieces of data (counted from data[0]) that are all zeros and merging the
// others into as few writes as possible. The skipped pieces must already
// read as zeros in dst (a hole or never written).
func WriteRuns(dst *os.File, data []byte, off int64) error {
	start := -1 // start of the pending run of non-zero granules
	flush := func(end int) error {
		if start < 0 {
			return nil
		}
		_, err := dst.WriteAt(data[start:end], off+int64(start))
		start = -1
		return err
	}
	for i := 0; i < len(data); i += Granule {
		j := min(i+Granule, len(data))
		if image.IsZero(data[i:j]) {
			if err := flush(i); err != nil {
				return err
			}
			continue
		}
		if start < 0 {
			start = i
		}
	}
	return flush(len(data))
}

// ContentHash digests what a writer writes: the format, the virtual size
// and, for every non-zero block, its offset, length and CRC-32C, so that the
// identifiers derived from it (VHD unique ID, VHDX GUIDs) are the same for
// the same disk and differ between disks, without anything random or
// time-dependent. CRC-32C (in hardware) rather than SHA-256 over the data
// keeps the digest nearly free; identifiers need uniqueness, not collision
// resistance against someone crafting disks.
type ContentHash struct{ h hash.Hash }

func NewContentHash(kind string, size int64) *ContentHash {
	c := &ContentHash{h: sha256.New()}
	c.h.Write([]byte("kiln " + kind + "\x00"))
	c.u64(uint64(size))
	return c
}

func (c *ContentHash) u64(v uint64) {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], v)
	c.h.Write(b[:])
}

// block adds a non-zero block of the virtual disk.
func (c *ContentHash) Block(off int64, data []byte) {
	c.u64(uint64(off))
	c.u64(uint64(len(data))<<32 | uint64(crc32.Checksum(data, castagnoli)))
}

// guid derives a GUID for the given purpose from the digest. It is an RFC
// 9562 version 8 (custom, here name-based on SHA-256) UUID.
func (c *ContentHash) GUID(purpose string) [16]byte {
	sum := c.h.Sum(nil)
	h := sha256.New()
	h.Write(sum)
	h.Write([]byte(purpose))
	var g [16]byte
	copy(g[:], h.Sum(nil))
	g[6] = g[6]&0x0f | 0x80 // version 8
	g[8] = g[8]&0x3f | 0x80 // variant 10
	return g
}

// EachBlockAsync calls fn, in order, for every block of size bs (the
// last may be shorter) of src that overlaps a data extent and is not all
// zeros, like ForEachBlock, but runs fn on a second goroutine so that
// reading and scanning the source overlaps with writing the output, and
// checks ctx between blocks. data belongs to fn until it returns. It
// returns the first error of the iteration or of fn.
//
// It walks the extents itself rather than through ForEachBlock to read
// into a few rotating buffers (ForEachBlock reuses one, which would need a
// copy per block) and to test blocks for zeros with image.IsZero, several times
// faster than isZero; together that halves the writers' time on a 2-core
// machine.
func EachBlockAsync(ctx context.Context, src image.Source, bs int64, fn func(off int64, data []byte) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	exts, err := src.Extents()
	if err != nil {
		return err
	}
	const depth = 4
	type job struct {
		off  int64
		data []byte
	}
	jobs := make(chan job, depth)
	free := make(chan []byte, depth)
	for range depth {
		free <- make([]byte, bs)
	}
	failed := make(chan struct{})
	var werr error
	done := make(chan struct{})
	go func() {
		defer close(done)
		for j := range jobs {
			if werr == nil {
				if werr = fn(j.off, j.data); werr != nil {
					close(failed)
				}
			}
			free <- j.data[:cap(j.data)]
		}
	}()
	err = func() error {
		size := src.Size()
		next := int64(0) // first block not yet visited
		for _, e := range exts {
			for off := max(e.Off/bs*bs, next); off < e.Off+e.Len && off < size; off += bs {
				if err := ctx.Err(); err != nil {
					return err
				}
				var buf []byte
				select {
				case buf = <-free:
				case <-failed:
					return nil // werr says why
				}
				n := min(bs, size-off)
				m, err := src.ReadAt(buf[:n], off)
				if err != nil && !(errors.Is(err, io.EOF) && int64(m) == n) {
					return err
				}
				next = off + bs
				if image.IsZero(buf[:n]) {
					free <- buf
					continue
				}
				jobs <- job{off, buf[:n]}
			}
		}
		return nil
	}()
	close(jobs)
	<-done
	if werr != nil {
		return werr
	}
	return err
}

// MergeExtent appends [off, off+n) to exts, merging it with the last
// extent when they touch.
func MergeExtent(exts []sparse.Extent, off, n int64) []sparse.Extent {
	if n <= 0 {
		return exts
	}
	if k := len(exts); k > 0 && exts[k-1].Off+exts[k-1].Len == off {
		exts[k-1].Len += n
		return exts
	}
	return append(exts, sparse.Extent{Off: off, Len: n})
}

// Table reads the entries of a block allocation table on demand, one
// page at a time, so opening a file never allocates in proportion to the
// disk size it claims. Entries are big-endian (VHD, width 4) or
// little-endian (VHDX, width 8).
type Table struct {
	r      io.ReaderAt
	off    int64 // file offset of entry 0
	n      int64 // number of entries
	width  int64
	format string

	page int64 // index of the cached page + 1; 0 if none
	buf  []byte
	mu   sync.Mutex
}

const tablePage = 4096

// NewTable reads n entries of width bytes (4: big-endian, VHD; 8:
// little-endian, VHDX) at off in r; errors name format.
func NewTable(r io.ReaderAt, off, n, width int64, format string) *Table {
	return &Table{r: r, off: off, n: n, width: width, format: format}
}

// Get returns entry i.
func (t *Table) Get(i int64) (uint64, error) {
	if i < 0 || i >= t.n {
		return 0, &image.FormatError{Format: t.format, Msg: fmt.Sprintf("block %d outside the allocation table", i)}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	per := tablePage / t.width
	pg := i / per
	if t.page != pg+1 {
		t.page = 0
		cnt := min(per, t.n-pg*per)
		if t.buf == nil {
			t.buf = make([]byte, tablePage)
		}
		if err := image.ReadFull(t.r, t.buf[:cnt*t.width], t.off+pg*tablePage, t.format, "allocation table"); err != nil {
			return 0, err
		}
		t.page = pg + 1
	}
	b := t.buf[(i-pg*per)*t.width:]
	if t.width == 4 {
		return uint64(binary.BigEndian.Uint32(b)), nil
	}
	return binary.LittleEndian.Uint64(b), nil
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)
