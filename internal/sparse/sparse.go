// Package sparse reads and copies files by their data extents, skipping
// holes (SEEK_DATA/SEEK_HOLE), so work on a mostly empty disk image grows
// with its data rather than its virtual size.
package sparse

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"

	"golang.org/x/sys/unix"

	"github.com/kiln-build/kiln/internal/infile"
)

// Extent is a run of bytes that may hold data.
type Extent struct{ Off, Len int64 }

// Extents lists the data extents of f. On filesystems without SEEK_DATA the
// whole file is one extent.
func Extents(f *os.File) ([]Extent, error) {
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	size := fi.Size()
	var out []Extent
	var off int64
	for off < size {
		data, err := unix.Seek(int(f.Fd()), off, unix.SEEK_DATA)
		if errors.Is(err, unix.ENXIO) {
			break // only a hole remains
		}
		if err != nil {
			return []Extent{{0, size}}, nil
		}
		hole, err := unix.Seek(int(f.Fd()), data, unix.SEEK_HOLE)
		if err != nil {
			hole = size
		}
		out = append(out, Extent{data, hole - data})
		off = hole
	}
	return out, nil
}

// Copy copies src to dst (created or truncated), keeping holes.
func Copy(dst, src string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	fi, err := in.Stat()
	if err != nil {
		return err
	}
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	defer out.Close()
	if err := out.Truncate(fi.Size()); err != nil {
		return err
	}
	exts, err := Extents(in)
	if err != nil {
		return err
	}
	buf := make([]byte, 1<<20)
	for _, e := range exts {
		if err := copyRange(out, in, e, buf); err != nil {
			return err
		}
	}
	return out.Sync()
}

func copyRange(out, in *os.File, e Extent, buf []byte) error {
	for done := int64(0); done < e.Len; {
		n := int64(len(buf))
		if e.Len-done < n {
			n = e.Len - done
		}
		r, err := in.ReadAt(buf[:n], e.Off+done)
		if err != nil && !(errors.Is(err, io.EOF) && int64(r) == n) {
			return err
		}
		if !allZero(buf[:r]) {
			if _, err := out.WriteAt(buf[:r], e.Off+done); err != nil {
				return err
			}
		}
		done += int64(r)
	}
	return nil
}

// SHA256 hashes a file, reading only its data extents (holes hash as zeros).
//
// Only a regular file is hashed (internal/infile): a FIFO or a device is
// an error at once, not a hang.
func SHA256(path string) (string, error) {
	f, _, err := infile.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", err
	}
	exts, err := Extents(f)
	if err != nil {
		return "", err
	}
	h := sha256.New()
	zeros := make([]byte, 1<<20)
	var pos int64
	writeZeros := func(n int64) {
		for n > 0 {
			c := min(n, int64(len(zeros)))
			h.Write(zeros[:c])
			n -= c
		}
	}
	for _, e := range exts {
		writeZeros(e.Off - pos)
		if _, err := io.Copy(h, io.NewSectionReader(f, e.Off, e.Len)); err != nil {
			return "", err
		}
		pos = e.Off + e.Len
	}
	writeZeros(fi.Size() - pos)
	return hex.EncodeToString(h.Sum(nil)), nil
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// Writer writes a stream into a file, leaving a hole where a whole write
// is zeros; Close sets the file's size to what was written. It is for
// streams of disk images, whose unused space is zeros.
type Writer struct {
	f   *os.File
	off int64
}

// NewWriter writes into f, an empty file, from its start.
func NewWriter(f *os.File) *Writer { return &Writer{f: f} }

func (w *Writer) Write(p []byte) (int, error) {
	if !allZero(p) {
		if n, err := w.f.WriteAt(p, w.off); err != nil {
			w.off += int64(n)
			return n, err
		}
	}
	w.off += int64(len(p))
	return len(p), nil
}

// Finish sets the file's size to the bytes written (the trailing zeros
// included) and syncs it. It does not close the file.
func (w *Writer) Finish() error {
	if err := w.f.Truncate(w.off); err != nil {
		return err
	}
	return w.f.Sync()
}
