package imagetest

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kiln-build/kiln/formats/image"
)

// The fuzz targets take a compact description of a sparse file rather than
// the file itself, so that seeds of real VHD/VHDX files (megabytes, mostly
// zeros) stay a few kilobytes and mutations land on structures:
//
//	u32 LE  bytes of zeros appended after the last segment
//	then segments: u32 LE offset, u16 LE length, length bytes
//
// The file is capped at FuzzMaxFile. With fix set, the target recomputes
// the checksums the fuzzer cannot (VHD footers and dynamic header, VHDX
// headers and region tables) so mutations get past them.

const FuzzMaxFile = 64 << 20

// FuzzEncode describes file as fuzz input: its non-zero 64-byte pieces,
// merged into segments.
func FuzzEncode(file []byte) []byte {
	out := binary.LittleEndian.AppendUint32(nil, 0)
	const g = 64
	for off := 0; off < len(file); {
		if image.IsZero(file[off:min(off+g, len(file))]) {
			off += g
			continue
		}
		end := off
		for end < len(file) && end-off < 65535-g && !image.IsZero(file[end:min(end+g, len(file))]) {
			end = min(end+g, len(file))
		}
		out = binary.LittleEndian.AppendUint32(out, uint32(off))
		out = binary.LittleEndian.AppendUint16(out, uint16(end-off))
		out = append(out, file[off:end]...)
		off = end
	}
	// The file's size: zeros after the last segment.
	last := 0
	for i := 4; i+6 <= len(out); {
		o := int(binary.LittleEndian.Uint32(out[i:]))
		n := int(binary.LittleEndian.Uint16(out[i+4:]))
		last = o + n
		i += 6 + n
	}
	binary.LittleEndian.PutUint32(out, uint32(len(file)-last))
	return out
}

// FuzzFile writes the file described by data at path (replacing it).
func FuzzFile(t testing.TB, path string, data []byte) {
	f, err := os.Create(path)
	require.NoError(t, err)
	defer f.Close()
	if len(data) < 4 {
		return
	}
	extra := int64(binary.LittleEndian.Uint32(data))
	end := int64(0)
	for i := 4; i+6 <= len(data); {
		off := int64(binary.LittleEndian.Uint32(data[i:]))
		n := int(binary.LittleEndian.Uint16(data[i+4:]))
		seg := data[i+6 : min(i+6+n, len(data))]
		i += 6 + n
		if off+int64(len(seg)) > FuzzMaxFile {
			continue
		}
		_, err := f.WriteAt(seg, off)
		require.NoError(t, err)
		end = max(end, off+int64(len(seg)))
	}
	require.NoError(t, f.Truncate(min(end+extra, FuzzMaxFile)))
}

// Patch rewrites the n bytes at off of the file being fuzzed through fn,
// if they exist.
type Patch func(off int64, n int, fn func(b []byte))

// fuzzPatch is Patch on f.
func fuzzPatch(f *os.File, off int64, n int, fn func(b []byte)) {
	b := make([]byte, n)
	if off < 0 {
		return
	}
	if m, _ := f.ReadAt(b, off); m < n {
		return
	}
	fn(b)
	f.WriteAt(b, off)
}

// Exercise reads an image the way a converter would, within budget bytes:
// its extents (which must lie inside the disk, in order) and the data in
// them, then 64 KiB at the start, the middle and the end. It returns the
// first error; a short read without one is an error as well.
func Exercise(img image.Image, budget int64) error {
	size := img.Size()
	if size < 0 {
		return fmt.Errorf("negative size %d", size)
	}
	buf := make([]byte, 64<<10)
	read := func(off int64) error {
		if off < 0 || off >= size {
			return nil
		}
		want := min(int64(len(buf)), size-off)
		n, err := img.ReadAt(buf[:want], off)
		if err != nil && !(errors.Is(err, io.EOF) && int64(n) == want) {
			return err
		}
		if int64(n) != want {
			return fmt.Errorf("read %d of %d bytes at %d", n, want, off)
		}
		return nil
	}
	exts, err := img.Extents()
	if err != nil {
		return err
	}
	var end int64
	for _, e := range exts {
		if e.Off < end || e.Len <= 0 || e.Off+e.Len > size {
			return fmt.Errorf("extent %+v out of order or outside the disk (%d bytes)", e, size)
		}
		end = e.Off + e.Len
		for off := e.Off; off < end && budget > 0; off += int64(len(buf)) {
			if err := read(off); err != nil {
				return err
			}
			budget -= int64(len(buf))
		}
	}
	for _, off := range []int64{0, size / 2, size - int64(len(buf)), size - 1} {
		if err := read(off); err != nil {
			return err
		}
	}
	return nil
}

// Malformed reports whether err says a file is malformed
// (*image.FormatError) or uses a feature Kiln does not read
// (image.ErrUnsupported): what a reader may answer to any input.
func Malformed(err error) bool {
	var fe *image.FormatError
	return errors.As(err, &fe) || errors.Is(err, image.ErrUnsupported)
}

// FuzzSeedSource is a small disk for seeds: 3 MiB + 512 with data in
// its first block, across a block boundary and at the end.
func FuzzSeedSource(t testing.TB, dir string) *image.RawFile {
	p := filepath.Join(dir, "seed.raw")
	Sparse(t, p, 3<<20+512, func(put func(int64, []byte)) {
		for _, off := range []int64{0, 1<<20 - 3, 2<<20 - 10, 3<<20 + 500} {
			put(off, []byte("kiln fuzz seed"))
		}
	})
	return OpenRaw(t, p)
}

func FuzzSeed(t testing.TB, dir string, src image.Source, o image.Options,
	write func(context.Context, *os.File, image.Source, image.Options) error) []byte {
	p := WriteFile(t, filepath.Join(dir, "seed.out"), src, o, write)
	b, err := os.ReadFile(p)
	require.NoError(t, err)
	return FuzzEncode(b)
}

// FuzzTarget is a reader under fuzzing.
type FuzzTarget struct {
	Format string                            // what the image's Format says
	Open   func(string) (image.Image, error) // the reader
	// Write makes the seeds: a file of a small disk (FuzzSeedSource) for
	// each of Seeds, added as it is and to be resealed by Fix.
	Write func(context.Context, *os.File, image.Source, image.Options) error
	Seeds []image.Options
	// Fix, if set, reseals a file of size bytes (recomputes the checksums
	// the fuzzer cannot) when the input asks for it, so mutations get past
	// them.
	Fix func(patch Patch, size int64)
	// Check, if set, runs on every file and must not fail.
	Check func(path string) ([]string, error)
}

// FuzzReader adds the target's seeds and an empty file, and runs the fuzz
// loop: each input describes a file (FuzzFile) that open must refuse with a
// *image.FormatError or image.ErrUnsupported, or read as an image of the
// target's format that survives Exercise. There is one file per
// fuzzing process, rewritten by every run: a temporary directory per run
// costs more than the run.
func FuzzReader(f *testing.F, tg FuzzTarget) {
	dir := f.TempDir()
	src := FuzzSeedSource(f, dir)
	for _, o := range tg.Seeds {
		seed := FuzzSeed(f, dir, src, o, tg.Write)
		f.Add(seed, false)
		f.Add(seed, true)
	}
	f.Add([]byte{}, false)
	p := filepath.Join(FuzzDir(f), "f."+tg.Format)
	f.Fuzz(func(t *testing.T, data []byte, resealed bool) {
		FuzzFile(t, p, data)
		if resealed && tg.Fix != nil {
			f, err := os.OpenFile(p, os.O_RDWR, 0)
			require.NoError(t, err)
			fi, err := f.Stat()
			require.NoError(t, err)
			tg.Fix(func(off int64, n int, fn func([]byte)) { fuzzPatch(f, off, n, fn) }, fi.Size())
			require.NoError(t, f.Close())
		}
		img, err := tg.Open(p)
		if err == nil {
			require.Equal(t, tg.Format, img.Format())
			err = Exercise(img, 512<<10)
			img.Close()
		}
		if err != nil && !Malformed(err) {
			t.Fatalf("unexpected error type %T: %v", err, err)
		}
		if tg.Check != nil {
			_, err = tg.Check(p)
			require.NoError(t, err)
		}
	})
}

// FuzzDir is where a fuzzing process keeps its file: in memory
// (/dev/shm) when possible, which makes runs several times faster.
func FuzzDir(f *testing.F) string {
	if d, err := os.MkdirTemp("/dev/shm", "kiln-vhd-fuzz-"); err == nil {
		f.Cleanup(func() { os.RemoveAll(d) })
		return d
	}
	return f.TempDir()
}

// FuzzEncodeFile is FuzzEncode of the file at path.
func FuzzEncodeFile(t testing.TB, path string) []byte {
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	return FuzzEncode(b)
}
