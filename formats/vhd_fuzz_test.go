package formats

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// The fuzz targets take a compact description of a sparse file rather than
// the file itself, so that seeds of real VHD/VHDX files (megabytes, mostly
// zeros) stay a few kilobytes and mutations land on structures:
//
//	u32 LE  bytes of zeros appended after the last segment
//	then segments: u32 LE offset, u16 LE length, length bytes
//
// The file is capped at vhdFuzzMaxFile. With fix set, the target recomputes
// the checksums the fuzzer cannot (VHD footers and dynamic header, VHDX
// headers and region tables) so mutations get past them.

const vhdFuzzMaxFile = 64 << 20

// vhdFuzzEncode describes file as fuzz input: its non-zero 64-byte pieces,
// merged into segments.
func vhdFuzzEncode(file []byte) []byte {
	out := binary.LittleEndian.AppendUint32(nil, 0)
	const g = 64
	for off := 0; off < len(file); {
		if isZero(file[off:min(off+g, len(file))]) {
			off += g
			continue
		}
		end := off
		for end < len(file) && end-off < 65535-g && !isZero(file[end:min(end+g, len(file))]) {
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

// vhdFuzzFile writes the file described by data at path (replacing it).
func vhdFuzzFile(t *testing.T, path string, data []byte) {
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
		if off+int64(len(seg)) > vhdFuzzMaxFile {
			continue
		}
		_, err := f.WriteAt(seg, off)
		require.NoError(t, err)
		end = max(end, off+int64(len(seg)))
	}
	require.NoError(t, f.Truncate(min(end+extra, vhdFuzzMaxFile)))
}

// vhdFuzzPatch rewrites the n bytes at off of f through fn, if they exist.
func vhdFuzzPatch(f *os.File, off int64, n int, fn func(b []byte)) {
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

func vhdFuzzFixVHD(t *testing.T, path string) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	require.NoError(t, err)
	defer f.Close()
	fi, err := f.Stat()
	require.NoError(t, err)
	var dataOff int64 = -1
	for _, off := range []int64{fi.Size() - vhdFooterSize, 0} {
		vhdFuzzPatch(f, off, vhdFooterSize, func(b []byte) {
			if string(b[:8]) != "conectix" {
				return
			}
			binary.BigEndian.PutUint32(b[vhdFtChecksum:], vhdChecksum(b, vhdFtChecksum))
			if d := binary.BigEndian.Uint64(b[vhdFtDataOffset:]); dataOff < 0 && d < vhdFuzzMaxFile {
				dataOff = int64(d)
			}
		})
	}
	vhdFuzzPatch(f, dataOff, vhdDynHeaderSize, func(b []byte) {
		binary.BigEndian.PutUint32(b[vhdDhChecksum:], vhdChecksum(b, vhdDhChecksum))
	})
}

func vhdFuzzFixVHDX(t *testing.T, path string) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	require.NoError(t, err)
	defer f.Close()
	for _, off := range []int64{vhdxHeader1Off, vhdxHeader2Off} {
		vhdFuzzPatch(f, off, vhdxHeaderSize, vhdxSeal)
	}
	for _, off := range []int64{vhdxRegion1Off, vhdxRegion2Off} {
		vhdFuzzPatch(f, off, vhdxRegionSize, vhdxSeal)
	}
}

// vhdFuzzExercise reads an image the way a converter would, bounded: the
// extents, and up to 64 KiB at the start, the end and each extent start.
// Failures must be *FormatError.
func vhdFuzzExercise(t *testing.T, img Image) {
	size := img.Size()
	require.GreaterOrEqual(t, size, int64(0))
	buf := make([]byte, 64<<10)
	read := func(off int64) {
		if off < 0 || off >= size {
			return
		}
		n, err := img.ReadAt(buf, off)
		if err != nil && !errors.Is(err, io.EOF) {
			var fe *FormatError
			require.ErrorAs(t, err, &fe)
			return
		}
		want := min(int64(len(buf)), size-off)
		require.Equal(t, want, int64(n))
	}
	read(0)
	read(size - int64(len(buf)))
	read(size - 1)
	exts, err := img.Extents()
	if err != nil {
		var fe *FormatError
		require.ErrorAs(t, err, &fe)
		return
	}
	for i, e := range exts {
		require.GreaterOrEqual(t, e.Off, int64(0))
		require.LessOrEqual(t, e.Off+e.Len, size)
		if i < 8 {
			read(e.Off)
		}
	}
}

func vhdFuzzOpenErr(t *testing.T, err error) {
	if errors.Is(err, ErrUnsupported) {
		return
	}
	var fe *FormatError
	require.ErrorAs(t, err, &fe)
}

// vhdFuzzSeedSource is a small disk for seeds: 3 MiB + 512 with data in
// its first block, across a block boundary and at the end.
func vhdFuzzSeedSource(t testing.TB, dir string) *RawFile {
	p := filepath.Join(dir, "seed.raw")
	f, err := os.Create(p)
	require.NoError(t, err)
	require.NoError(t, f.Truncate(3<<20+512))
	for _, off := range []int64{0, 1<<20 - 3, 2<<20 - 10, 3<<20 + 500} {
		_, err := f.WriteAt([]byte("kiln fuzz seed"), off)
		require.NoError(t, err)
	}
	require.NoError(t, f.Close())
	return vhdOpenRaw(t, p)
}

func vhdFuzzSeed(t testing.TB, dir string, src Source, o Options,
	write func(context.Context, *os.File, Source, Options) error) []byte {
	p := filepath.Join(dir, "seed.out")
	vhdWriteFile(t, p, src, o, write)
	b, err := os.ReadFile(p)
	require.NoError(t, err)
	return vhdFuzzEncode(b)
}

// vhdTinyDynamic is a hand-made dynamic VHD with 4 KiB blocks (the reader
// takes any power of two from 512 bytes): 3 blocks, block 1 absent, block 2
// with a partial sector bitmap.
func vhdTinyDynamic() []byte {
	const bs = 4096
	var b []byte
	footer := vhdMakeFooter(vhdTypeDynamic, 3*bs, [16]byte{1})
	b = append(b, footer...)
	b = append(b, vhdMakeDynHeader(1536, 3, bs)...)
	bat := make([]byte, 512)
	for i := range bat {
		bat[i] = 0xff
	}
	binary.BigEndian.PutUint32(bat[0:], 2048/512)
	binary.BigEndian.PutUint32(bat[8:], (2048+512+bs)/512)
	b = append(b, bat...)
	for blk, bm := range []byte{0xff, 0xa5} {
		bitmap := make([]byte, 512)
		bitmap[0] = bm
		b = append(b, bitmap...)
		data := make([]byte, bs)
		for i := range data {
			data[i] = byte(i*7 + blk)
		}
		b = append(b, data...)
	}
	return append(b, footer...)
}

// vhdFuzzDir is where a fuzzing process keeps its file: in memory
// (/dev/shm) when possible, which makes runs several times faster.
func vhdFuzzDir(f *testing.F) string {
	if d, err := os.MkdirTemp("/dev/shm", "kiln-vhd-fuzz-"); err == nil {
		f.Cleanup(func() { os.RemoveAll(d) })
		return d
	}
	return f.TempDir()
}

func FuzzOpenVHD(f *testing.F) {
	dir := f.TempDir()
	src := vhdFuzzSeedSource(f, dir)
	f.Add(vhdFuzzSeed(f, dir, src, Options{}, WriteVHD), false)
	f.Add(vhdFuzzSeed(f, dir, src, Options{Subformat: "dynamic"}, WriteVHD), false)
	f.Add(vhdFuzzSeed(f, dir, src, Options{Subformat: "dynamic"}, WriteVHD), true)
	f.Add(vhdFuzzEncode(vhdTinyDynamic()), false)
	f.Add(vhdFuzzEncode(vhdTinyDynamic()), true)
	f.Add(vhdFuzzEncode(append(make([]byte, 4096), vhdMakeFooter(vhdTypeFixed, 4096, [16]byte{})...)), true)
	f.Add([]byte{}, false)
	// One file per fuzzing process, rewritten by every run: a temporary
	// directory per run costs more than the run.
	p := filepath.Join(vhdFuzzDir(f), "f.vhd")
	f.Fuzz(func(t *testing.T, data []byte, fix bool) {
		vhdFuzzFile(t, p, data)
		if fix {
			vhdFuzzFixVHD(t, p)
		}
		img, err := OpenVHD(p)
		if err != nil {
			vhdFuzzOpenErr(t, err)
			return
		}
		defer img.Close()
		require.Equal(t, "vhd", img.Format())
		vhdFuzzExercise(t, img)
	})
}

func FuzzOpenVHDX(f *testing.F) {
	dir := f.TempDir()
	src := vhdFuzzSeedSource(f, dir)
	f.Add(vhdFuzzSeed(f, dir, src, Options{}, WriteVHDX), false)
	f.Add(vhdFuzzSeed(f, dir, src, Options{}, WriteVHDX), true)
	f.Add(vhdFuzzSeed(f, dir, src, Options{Subformat: "fixed"}, WriteVHDX), true)
	f.Add([]byte{}, false)
	// testdata/fuzz/FuzzOpenVHDX holds seeds made by qemu-img as well.
	// One file per fuzzing process, rewritten by every run: a temporary
	// directory per run costs more than the run.
	p := filepath.Join(vhdFuzzDir(f), "f.vhdx")
	f.Fuzz(func(t *testing.T, data []byte, fix bool) {
		vhdFuzzFile(t, p, data)
		if fix {
			vhdFuzzFixVHDX(t, p)
		}
		img, err := OpenVHDX(p)
		if err != nil {
			vhdFuzzOpenErr(t, err)
		} else {
			require.Equal(t, "vhdx", img.Format())
			vhdFuzzExercise(t, img)
			img.Close()
		}
		// The checker must survive anything as well.
		_, err = CheckVHDX(p)
		require.NoError(t, err)
	})
}

// TestVHDFuzzEncode checks the fuzz encoding round-trips a real file.
func TestVHDFuzzEncode(t *testing.T) {
	dir := t.TempDir()
	src := vhdFuzzSeedSource(t, dir)
	for _, c := range []struct {
		o     Options
		write func(context.Context, *os.File, Source, Options) error
	}{{Options{Subformat: "dynamic"}, WriteVHD}, {Options{}, WriteVHDX}} {
		p := filepath.Join(dir, "orig")
		vhdWriteFile(t, p, src, c.o, c.write)
		orig, err := os.ReadFile(p)
		require.NoError(t, err)
		enc := vhdFuzzEncode(orig)
		require.Less(t, len(enc), 8<<10)
		q := filepath.Join(dir, "copy")
		vhdFuzzFile(t, q, enc)
		back, err := os.ReadFile(q)
		require.NoError(t, err)
		require.Equal(t, orig, back)
	}
	tiny := vhdTinyDynamic()
	p := filepath.Join(dir, "tiny.vhd")
	require.NoError(t, os.WriteFile(p, tiny, 0o644))
	img, err := OpenVHD(p)
	require.NoError(t, err)
	defer img.Close()
	got := make([]byte, img.Size())
	_, err = img.ReadAt(got, 0)
	require.NoError(t, err)
	for i := range 4096 {
		require.Equal(t, byte(i*7), got[i])        // block 0: all present
		require.Equal(t, byte(0), got[4096+i])     // block 1: absent
		present := byte(0xa5)&(0x80>>(i/512)) != 0 // block 2: bitmap 10100101
		want := byte(0)
		if present {
			want = byte(i*7 + 1)
		}
		require.Equal(t, want, got[8192+i], "byte %d of block 2", i)
	}
}
