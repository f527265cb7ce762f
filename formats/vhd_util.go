package formats

// Helpers shared by the VHD and VHDX writers and readers (vhd.go, vhdx.go).
// Every name here starts with vhd so the file can live next to the other
// formats of the package.

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"hash"
	"hash/crc32"
	"io"
	"os"

	"github.com/kiln-build/kiln/internal/sparse"
)

const (
	vhdMiB = int64(1) << 20

	// vhdGranule is the granularity of the holes the writers leave inside
	// the blocks they allocate: a run of vhdGranule zero bytes of the source
	// is not written, so it stays a hole in the output file (like qemu-img's
	// default -S 4k).
	vhdGranule = 4096
)

func vhdRoundUp(n, m int64) int64 { return (n + m - 1) / m * m }

// vhdWriteRuns writes data at off in dst, skipping the vhdGranule-sized
// pieces of data (counted from data[0]) that are all zeros and merging the
// others into as few writes as possible. The skipped pieces must already
// read as zeros in dst (a hole or never written).
func vhdWriteRuns(dst *os.File, data []byte, off int64) error {
	start := -1 // start of the pending run of non-zero granules
	flush := func(end int) error {
		if start < 0 {
			return nil
		}
		_, err := dst.WriteAt(data[start:end], off+int64(start))
		start = -1
		return err
	}
	for i := 0; i < len(data); i += vhdGranule {
		j := min(i+vhdGranule, len(data))
		if vhdIsZero(data[i:j]) {
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

// vhdContentHash digests what a writer writes: the format, the virtual size
// and, for every non-zero block, its offset, length and CRC-32C, so that the
// identifiers derived from it (VHD unique ID, VHDX GUIDs) are the same for
// the same disk and differ between disks, without anything random or
// time-dependent. CRC-32C (in hardware) rather than SHA-256 over the data
// keeps the digest nearly free; identifiers need uniqueness, not collision
// resistance against someone crafting disks.
type vhdContentHash struct{ h hash.Hash }

func vhdNewContentHash(kind string, size int64) *vhdContentHash {
	c := &vhdContentHash{h: sha256.New()}
	c.h.Write([]byte("kiln " + kind + "\x00"))
	c.u64(uint64(size))
	return c
}

func (c *vhdContentHash) u64(v uint64) {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], v)
	c.h.Write(b[:])
}

// block adds a non-zero block of the virtual disk.
func (c *vhdContentHash) block(off int64, data []byte) {
	c.u64(uint64(off))
	c.u64(uint64(len(data))<<32 | uint64(crc32.Checksum(data, vhdxCRCTable)))
}

// guid derives a GUID for the given purpose from the digest. It is an RFC
// 9562 version 8 (custom, here name-based on SHA-256) UUID.
func (c *vhdContentHash) guid(purpose string) [16]byte {
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

// vhdEachBlockAsync calls fn, in order, for every block of size bs (the
// last may be shorter) of src that overlaps a data extent and is not all
// zeros, like ForEachBlock, but runs fn on a second goroutine so that
// reading and scanning the source overlaps with writing the output, and
// checks ctx between blocks. data belongs to fn until it returns. It
// returns the first error of the iteration or of fn.
//
// It walks the extents itself rather than through ForEachBlock to read
// into a few rotating buffers (ForEachBlock reuses one, which would need a
// copy per block) and to test blocks for zeros with vhdIsZero, several times
// faster than isZero; together that halves the writers' time on a 2-core
// machine.
func vhdEachBlockAsync(ctx context.Context, src Source, bs int64, fn func(off int64, data []byte) error) error {
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
				if vhdIsZero(buf[:n]) {
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

// vhdIsZero reports whether b is all zeros, 64 bytes at a time.
func vhdIsZero(b []byte) bool {
	for len(b) >= 64 {
		if binary.LittleEndian.Uint64(b)|binary.LittleEndian.Uint64(b[8:])|
			binary.LittleEndian.Uint64(b[16:])|binary.LittleEndian.Uint64(b[24:])|
			binary.LittleEndian.Uint64(b[32:])|binary.LittleEndian.Uint64(b[40:])|
			binary.LittleEndian.Uint64(b[48:])|binary.LittleEndian.Uint64(b[56:]) != 0 {
			return false
		}
		b = b[64:]
	}
	return isZero(b)
}

// vhdReadFull reads exactly len(p) bytes at off; reading past the end of the
// file is reported as a *FormatError of the given format ("truncated").
func vhdReadFull(r io.ReaderAt, p []byte, off int64, format, what string) error {
	n, err := r.ReadAt(p, off)
	if n == len(p) {
		return nil
	}
	if err == nil || errors.Is(err, io.EOF) {
		return &FormatError{Format: format, Msg: what + " lies beyond the end of the file (truncated?)"}
	}
	return err
}

// vhdMergeExtent appends [off, off+n) to exts, merging it with the last
// extent when they touch.
func vhdMergeExtent(exts []sparse.Extent, off, n int64) []sparse.Extent {
	if n <= 0 {
		return exts
	}
	if k := len(exts); k > 0 && exts[k-1].Off+exts[k-1].Len == off {
		exts[k-1].Len += n
		return exts
	}
	return append(exts, sparse.Extent{Off: off, Len: n})
}
