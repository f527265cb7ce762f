// Package image holds what every disk format of Kiln shares: a virtual disk
// to convert (Source), a disk image file opened as one (Image), writer
// Options, the errors readers return (FormatError, ErrUnsupported), raw
// files (OpenRaw), and the helpers that walk or hash a virtual disk
// (ForEachBlock, VirtualSHA256) or read a file's structures (ReadFull,
// ReadPieces, Open, OpenFile, WithFile).
//
// It knows no format: the formats live in their own packages (qcow2, vmdk,
// vhd, vhdx, ova) and the registry that names them in package formats.
package image

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/kiln-build/kiln/internal/infile"
	"github.com/kiln-build/kiln/internal/sparse"
)

// Source is a virtual disk to convert: its bytes, its virtual size and the
// extents that may hold data (everything outside them reads as zeros).
type Source interface {
	io.ReaderAt
	Size() int64
	Extents() ([]sparse.Extent, error)
}

// Image is a disk image file opened for reading as a virtual disk.
type Image interface {
	Source
	Format() string    // "raw", "qcow2", "vmdk", "vhd", "vhdx"
	Subformat() string // e.g. "monolithicSparse", "streamOptimized", "fixed", "dynamic"; "" if none
	Close() error
}

// Options tune a writer. Zero values are sensible defaults.
type Options struct {
	Subformat string // format-specific: "streamOptimized", "monolithicSparse", "fixed", "dynamic"
	Compress  bool   // qcow2: compressed clusters
	Workers   int    // parallel compression workers; 0 = runtime.NumCPU()
	// qcow2 only: an overlay on a backing file. Clusters the source does not
	// provide read from the backing file, whose path and QEMU format name
	// ("raw", "vmdk", "vpc", "vhdx", "qcow2") go into the header.
	BackingFile, BackingFormat string
}

// ErrUnsupported is returned for a valid file that uses a feature Kiln does
// not read (an encrypted qcow2, a VMDK split into several files, ...).
var ErrUnsupported = errors.New("unsupported image feature")

// FormatError reports a malformed image file.
type FormatError struct {
	Format string
	Msg    string
}

func (e *FormatError) Error() string { return fmt.Sprintf("%s: %s", e.Format, e.Msg) }

// Errorf makes a *FormatError of the given format.
func Errorf(format, msg string, a ...any) error {
	return &FormatError{Format: format, Msg: fmt.Sprintf(msg, a...)}
}

// ReadFull reads exactly len(p) bytes at off. Reading past the end of the
// file is a *FormatError of the given format that names what was read
// ("footer", "grain directory", ...).
func ReadFull(r io.ReaderAt, p []byte, off int64, format, what string) error {
	n, err := r.ReadAt(p, off)
	if n == len(p) {
		return nil
	}
	if err == nil || errors.Is(err, io.EOF) {
		return &FormatError{Format: format, Msg: fmt.Sprintf("%s (%d bytes at %d) lies beyond the end of the file (truncated?)", what, len(p), off)}
	}
	return err
}

// ReadPieces is the ReadAt of a virtual disk of size bytes stored in pieces
// of piece bytes (clusters, grains, blocks). It refuses a negative offset
// with a *FormatError of format, reads nothing at or past the end, cuts p
// at the end (and then reports io.EOF), and fills the rest piece by piece
// with read(b, i, in): b is the part of p that lies in piece i, from its
// byte in.
func ReadPieces(p []byte, off, size, piece int64, format string, read func(b []byte, i, in int64) error) (int, error) {
	if off < 0 {
		return 0, Errorf(format, "negative offset %d", off)
	}
	if off >= size {
		return 0, io.EOF
	}
	n, eof := len(p), error(nil)
	if int64(n) > size-off {
		n, eof = int(size-off), io.EOF
	}
	for done := 0; done < n; {
		pos := off + int64(done)
		in := pos % piece
		m := int(min(int64(n-done), piece-in))
		if err := read(p[done:done+m], pos/piece, in); err != nil {
			return done, err
		}
		done += m
	}
	return n, eof
}

// LastPiece holds the last piece (a compressed cluster or grain) a reader
// inflated, so that reading a piece in small parts inflates it once. The
// zero value is empty; the pieces it holds are shared and never modified.
type LastPiece struct {
	mu   sync.Mutex
	i    int64
	data []byte
}

// Get returns piece i: the one held, or else what load returns, which is
// then held instead.
func (c *LastPiece) Get(i int64, load func() ([]byte, error)) ([]byte, error) {
	c.mu.Lock()
	if c.data != nil && c.i == i {
		data := c.data
		c.mu.Unlock()
		return data, nil
	}
	c.mu.Unlock()
	data, err := load()
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.i, c.data = i, data
	c.mu.Unlock()
	return data, nil
}

// OpenFile opens the file at path and hands it and its size to open. The
// file is closed again if open fails; otherwise it belongs to the result.
func OpenFile[T any](path string, open func(f *os.File, size int64) (T, error)) (T, error) {
	return withFile(path, open, true)
}

// WithFile opens the file at path, hands it and its size to fn and closes
// it again: for checks that read a file and keep nothing open.
func WithFile[T any](path string, fn func(f *os.File, size int64) (T, error)) (T, error) {
	return withFile(path, fn, false)
}

// Open opens the file at path as an Image with open (a format's reader,
// whose image closes the file). It returns a nil Image on failure.
func Open[T Image](path string, open func(f *os.File, size int64) (T, error)) (Image, error) {
	img, err := OpenFile(path, open)
	if err != nil {
		return nil, err
	}
	return img, nil
}

// withFile opens path, hands the file and its size to fn, and closes the
// file unless keep is set and fn succeeded.
//
// Only a regular file is opened (internal/infile): a directory, a FIFO or
// a device such as /dev/zero is an error at once, not a hang.
func withFile[T any](path string, fn func(f *os.File, size int64) (T, error), keep bool) (T, error) {
	var v T
	f, size, err := infile.Open(path)
	if err != nil {
		return v, err
	}
	if err = CheckFileSize(size); err != nil {
		err = fmt.Errorf("%s: %w", path, err)
	} else {
		v, err = fn(f, size)
	}
	if err != nil || !keep {
		f.Close()
	}
	return v, err
}

// MaxVirtualSize is the largest virtual disk Kiln reads or writes: 64 TiB,
// the most VHDX (the largest of the formats' limits but qcow2's) and any
// platform Kiln targets accept. A reader refuses a header that claims more
// (CheckVirtualSize) before it allocates anything for it.
const MaxVirtualSize = 64 << 40

// CheckVirtualSize refuses a virtual size beyond MaxVirtualSize.
func CheckVirtualSize(format string, size uint64) error {
	if size > MaxVirtualSize {
		return Errorf(format, "virtual size of %d bytes is beyond Kiln's limit of %d bytes (64 TiB)", size, uint64(MaxVirtualSize))
	}
	return nil
}

// CheckFileSize refuses an input file larger than MaxVirtualSize plus its
// metadata's room (a raw file is its own virtual disk).
func CheckFileSize(size int64) error {
	if size > MaxVirtualSize+MaxVirtualSize/16 {
		return fmt.Errorf("file of %d bytes is beyond Kiln's limit of 64 TiB of disk", size)
	}
	return nil
}

// RawFile is a raw image file as a Source and an Image.
type RawFile struct {
	f    *os.File
	size int64
}

// OpenRaw opens a raw image.
func OpenRaw(path string) (*RawFile, error) {
	return OpenFile(path, func(f *os.File, size int64) (*RawFile, error) {
		if err := CheckVirtualSize("raw", uint64(size)); err != nil {
			return nil, err
		}
		return &RawFile{f: f, size: size}, nil
	})
}

func (r *RawFile) ReadAt(p []byte, off int64) (int, error) { return r.f.ReadAt(p, off) }
func (r *RawFile) Size() int64                             { return r.size }
func (r *RawFile) Extents() ([]sparse.Extent, error)       { return sparse.Extents(r.f) }
func (r *RawFile) Format() string                          { return "raw" }
func (r *RawFile) Subformat() string                       { return "" }
func (r *RawFile) Close() error                            { return r.f.Close() }

// ForEachBlock calls fn for every block of size bs (the last may be shorter)
// of src that overlaps a data extent and is not all zeros, in order. buf is
// reused between calls; fn must not keep it.
func ForEachBlock(src Source, bs int64, fn func(off int64, data []byte) error) error {
	exts, err := src.Extents()
	if err != nil {
		return err
	}
	buf := make([]byte, bs)
	next := int64(0) // first block not yet visited
	for _, e := range exts {
		first := e.Off / bs * bs
		if first < next {
			first = next
		}
		for off := first; off < e.Off+e.Len && off < src.Size(); off += bs {
			n := bs
			if off+n > src.Size() {
				n = src.Size() - off
			}
			m, err := src.ReadAt(buf[:n], off)
			if err != nil && !(errors.Is(err, io.EOF) && int64(m) == n) {
				return err
			}
			next = off + bs
			if IsZero(buf[:n]) {
				continue
			}
			if err := fn(off, buf[:n]); err != nil {
				return err
			}
		}
	}
	return nil
}

// IsZero reports whether b is all zeros, 64 bytes at a time.
func IsZero(b []byte) bool {
	for len(b) >= 64 {
		if binary.LittleEndian.Uint64(b)|binary.LittleEndian.Uint64(b[8:])|
			binary.LittleEndian.Uint64(b[16:])|binary.LittleEndian.Uint64(b[24:])|
			binary.LittleEndian.Uint64(b[32:])|binary.LittleEndian.Uint64(b[40:])|
			binary.LittleEndian.Uint64(b[48:])|binary.LittleEndian.Uint64(b[56:]) != 0 {
			return false
		}
		b = b[64:]
	}
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// VirtualSHA256 hashes the first n bytes of img's virtual disk (reading only
// its data extents; the rest hashes as zeros) and reports whether every byte
// after n is zero.
func VirtualSHA256(ctx context.Context, img Image, n int64) (string, bool, error) {
	exts, err := img.Extents()
	if err != nil {
		return "", false, err
	}
	h := sha256.New()
	zeros := make([]byte, 1<<20)
	buf := make([]byte, 1<<20)
	var pos int64
	hashZeros := func(to int64) {
		for pos < to {
			c := min(to-pos, int64(len(zeros)))
			h.Write(zeros[:c])
			pos += c
		}
	}
	tailZero := true
	for _, e := range exts {
		if err := ctx.Err(); err != nil {
			return "", false, err
		}
		for off := e.Off; off < e.Off+e.Len; {
			c := min(e.Off+e.Len-off, int64(len(buf)))
			if _, err := img.ReadAt(buf[:c], off); err != nil && !errors.Is(err, io.EOF) {
				return "", false, err
			}
			if off < n {
				hashZeros(off)
				k := min(c, n-off)
				h.Write(buf[:k])
				pos = off + k
				if k < c && !IsZero(buf[k:c]) {
					tailZero = false
				}
			} else if !IsZero(buf[:c]) {
				tailZero = false
			}
			off += c
		}
	}
	hashZeros(n)
	return hex.EncodeToString(h.Sum(nil)), tailZero, nil
}
