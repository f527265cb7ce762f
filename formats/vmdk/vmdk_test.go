package vmdk

import (
	"bytes"
	"context"
	"errors"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kiln-build/kiln/formats/image"
	"github.com/kiln-build/kiln/formats/internal/imagetest"
	"github.com/kiln-build/kiln/internal/testutil"
)

// vmdkTestSize is 1 GiB plus three sectors: not a multiple of a grain,
// so the last grain is partial.
const vmdkTestSize = 1<<30 + 3*512

// vmdkTestRaw builds a sparse raw disk with random blocks, compressible
// text, binaries, data across grain and grain-table boundaries, explicit
// zero blocks and data in the last, partial grain.
func vmdkTestRaw(t testing.TB, dir string) string {
	t.Helper()
	p := filepath.Join(dir, "src.raw")
	rng := rand.New(rand.NewSource(1))
	random := func(n int) []byte {
		b := make([]byte, n)
		rng.Read(b)
		return b
	}
	imagetest.Sparse(t, p, vmdkTestSize, func(write func(int64, []byte)) {
		write(0, random(1<<20))                              // incompressible
		write(100<<20, testutil.Text(4<<20))                 // compressible
		write(1000*GrainSize-5000, random(10000))            // across a grain boundary
		write(32<<20-150000, testutil.Text(300000))          // across a grain-table boundary
		write(200<<20, make([]byte, 1<<20))                  // explicit zeros: no grains
		write(300<<20+12345, append(make([]byte, 4096), 1))  // mostly zero grain
		write(500<<20, testutil.Binaries(t, 6<<20))          // real-looking data
		write(1<<30, random(vmdkTestSize-(1<<30)))           // the partial grain
		write(1<<30-100, []byte("the end of the first GiB")) // last full grain
	})
	return p
}

func TestVMDKDeterministic(t *testing.T) {
	dir := t.TempDir()
	raw := vmdkTestRaw(t, dir)
	src, err := image.OpenRaw(raw)
	require.NoError(t, err)
	defer src.Close()
	read := func(p string) []byte {
		b, err := os.ReadFile(p)
		require.NoError(t, err)
		return b
	}
	for _, c := range []struct {
		sub     string
		workers []int
	}{{StreamOptimized, []int{1, 4, 4, 0}}, {MonolithicSparse, []int{0, 0}}} {
		var first []byte
		p := filepath.Join(dir, c.sub+".vmdk") // the descriptor names the file
		for _, w := range c.workers {
			imagetest.WriteFile(t, p, src, image.Options{Subformat: c.sub, Workers: w}, Write)
			b := read(p)
			if first == nil {
				first = b
				continue
			}
			require.True(t, bytes.Equal(first, b), "%s with %d workers differs", c.sub, w)
		}
	}
	// Equal content, equal CID, whatever the subformat.
	m, err := Open(filepath.Join(dir, "monolithicSparse.vmdk"))
	require.NoError(t, err)
	defer m.Close()
	s, err := Open(filepath.Join(dir, "streamOptimized.vmdk"))
	require.NoError(t, err)
	defer s.Close()
	cid := func(img image.Image) string {
		d, err := img.(*Disk).readDescriptor(&img.(*Disk).h)
		require.NoError(t, err)
		require.NotEmpty(t, d)
		b := make([]byte, 2048)
		_, err = img.(*Disk).r.ReadAt(b, 512)
		require.NoError(t, err)
		return vmdkDescValue(string(b), "CID")
	}
	require.Equal(t, cid(m), cid(s))
	require.Len(t, cid(m), 8)
}

// vmdkSmall writes a small disk in both subformats for the edge cases and
// the fuzz corpus.
func vmdkSmall(t testing.TB, dir string, size int64, data map[int64][]byte) (raw string, files map[string]string) {
	raw = filepath.Join(dir, "small.raw")
	imagetest.RawWith(t, raw, size, data)
	src, err := image.OpenRaw(raw)
	require.NoError(t, err)
	defer src.Close()
	files = map[string]string{}
	for _, sub := range []string{MonolithicSparse, StreamOptimized} {
		p := imagetest.WriteFile(t, filepath.Join(dir, "small-"+sub+".vmdk"), src, image.Options{Subformat: sub}, Write)
		files[sub] = p
	}
	return raw, files
}

func TestVMDKEdgeSizes(t *testing.T) {
	for _, c := range []struct {
		name string
		size int64
		data map[int64][]byte
	}{
		{"empty disk", 0, nil},
		{"all zero", 10 << 20, nil},
		{"one sector", 512, map[int64][]byte{0: {1, 2, 3}}},
		{"odd size", 100000, map[int64][]byte{99990: []byte("0123456789")}},
		{"one GT", 32 << 20, map[int64][]byte{0: {1}, 32<<20 - 1: {2}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			raw, files := vmdkSmall(t, dir, c.size, c.data)
			src, err := image.OpenRaw(raw)
			require.NoError(t, err)
			defer src.Close()
			padded := (c.size + 511) / 512 * 512
			for sub, p := range files {
				img, err := Open(p)
				require.NoError(t, err, sub)
				require.Equal(t, padded, img.Size())
				got := make([]byte, padded)
				n, err := img.ReadAt(got, 0)
				if padded > 0 {
					require.NoError(t, err)
				}
				require.Equal(t, int(padded), n)
				want := make([]byte, padded)
				_, _ = src.ReadAt(want, 0)
				require.True(t, bytes.Equal(want, got), sub)
				// Past the end: EOF.
				_, err = img.ReadAt(make([]byte, 1), padded)
				require.Error(t, err)
				require.NoError(t, img.Close())
				// qemu-img cannot open a VMDK of 0 sectors, even its own.
				if c.size > 0 && testutil.Have(t, "qemu-img") {
					testutil.Run(t, "qemu-img", "check", "-f", "vmdk", p)
					if c.size%512 == 0 {
						testutil.Run(t, "qemu-img", "compare", "-f", "raw", "-F", "vmdk", raw, p)
					}
				}
			}
		})
	}
}

func TestVMDKUnsupported(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, []byte(text), 0o644))
		return p
	}
	cases := map[string]string{
		"descriptor": write("desc.vmdk", "# Disk DescriptorFile\nversion=1\nCID=12345678\nparentCID=ffffffff\ncreateType=\"twoGbMaxExtentSparse\"\n\nRW 4192256 SPARSE \"a-s001.vmdk\"\n"),
		"flat":       write("flat.vmdk", "# Disk DescriptorFile\ncreateType=\"monolithicFlat\"\nRW 2048 FLAT \"flat-flat.vmdk\" 0\n"),
		"cowd":       write("cowd.vmdk", "COWD\x01\x00\x00\x00"+strings.Repeat("\x00", 2040)),
	}
	// Hand-made single-file variants: a delta disk, several extents, a
	// createType Kiln does not read.
	tiny := func(name, desc string) string {
		h := vmdkHeader{Version: 1, Flags: vmdkFlagNewline, Capacity: 128, GrainSize: 128, DescOffset: 1, DescSize: 2, NumGTEsPerGT: 512, GDOffset: 3, OverHead: 4}
		b := append(h.marshal(), make([]byte, 3*512+2048)...)
		copy(b[512:], desc)
		binary := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(binary, b, 0o644))
		return binary
	}
	cases["delta"] = tiny("delta.vmdk", "CID=1\nparentCID=12345678\ncreateType=\"monolithicSparse\"\nRW 128 SPARSE \"delta.vmdk\"\n")
	cases["two extents"] = tiny("two.vmdk", "parentCID=ffffffff\ncreateType=\"monolithicSparse\"\nRW 64 SPARSE \"two.vmdk\"\nRW 64 SPARSE \"other.vmdk\"\n")
	cases["vmfs"] = tiny("vmfs.vmdk", "parentCID=ffffffff\ncreateType=\"vmfsSparse\"\nRW 128 SPARSE \"vmfs.vmdk\"\n")
	if testutil.Have(t, "qemu-img") {
		split := filepath.Join(dir, "split.vmdk")
		testutil.Run(t, "qemu-img", "create", "-f", "vmdk", "-o", "subformat=twoGbMaxExtentSparse", split, "3G")
		cases["qemu split descriptor"] = split
		cases["qemu split extent"] = filepath.Join(dir, "split-s001.vmdk")
		base := filepath.Join(dir, "base.vmdk")
		testutil.Run(t, "qemu-img", "create", "-f", "vmdk", base, "64M")
		child := filepath.Join(dir, "child.vmdk")
		testutil.Run(t, "qemu-img", "create", "-f", "vmdk", "-b", base, "-F", "vmdk", child)
		cases["qemu delta"] = child
	}
	for name, p := range cases {
		_, err := Open(p)
		require.ErrorIs(t, err, image.ErrUnsupported, name)
		t.Logf("%s: %v", name, err)
	}
	_, err := Open(write("junk.vmdk", "hello"))
	var fe *image.FormatError
	require.ErrorAs(t, err, &fe)
	f, err := os.Create(filepath.Join(dir, "x.vmdk"))
	require.NoError(t, err)
	defer f.Close()
	require.ErrorIs(t, Write(context.Background(), f, nil, image.Options{Subformat: "twoGbMaxExtentSparse"}), image.ErrUnsupported)
}

func TestVMDKMalformed(t *testing.T) {
	dir := t.TempDir()
	_, files := vmdkSmall(t, dir, 3<<20, map[int64][]byte{0: testutil.Text(1 << 20), 2 << 20: {1, 2, 3}})
	for sub, p := range files {
		good, err := os.ReadFile(p)
		require.NoError(t, err)
		for _, c := range vmdkCorruptions(good) {
			img, err := OpenAt(bytes.NewReader(c.data), int64(len(c.data)))
			if err == nil {
				err = imagetest.Exercise(img, 64<<20)
			}
			require.Error(t, err, "%s: %s", sub, c.name)
			var fe *image.FormatError
			if !errors.As(err, &fe) {
				require.ErrorIs(t, err, image.ErrUnsupported, "%s: %s", sub, c.name)
			}
		}
	}
}

type vmdkCorruption struct {
	name string
	data []byte
}

// vmdkCorruptions derives broken files from a good one.
func vmdkCorruptions(good []byte) []vmdkCorruption {
	var out []vmdkCorruption
	mod := func(name string, f func(b []byte) []byte) {
		b := f(append([]byte(nil), good...))
		out = append(out, vmdkCorruption{name, b})
	}
	le := func(b []byte, off int, v uint64, n int) []byte {
		for i := 0; i < n; i++ {
			b[off+i] = byte(v >> (8 * i))
		}
		return b
	}
	mod("truncated header", func(b []byte) []byte { return b[:300] })
	mod("truncated half", func(b []byte) []byte { return b[:len(b)/2] })
	mod("truncated tail", func(b []byte) []byte { return b[:len(b)-512] })
	mod("version 9", func(b []byte) []byte { return le(b, 4, 9, 4) })
	mod("grain size 3", func(b []byte) []byte { return le(b, 20, 3, 8) })
	mod("grain size huge", func(b []byte) []byte { return le(b, 20, 1<<40, 8) })
	mod("no GTEs", func(b []byte) []byte { return le(b, 44, 0, 4) })
	mod("capacity huge", func(b []byte) []byte { return le(b, 12, 1<<60, 8) })
	mod("descriptor beyond", func(b []byte) []byte { return le(b, 28, 1<<40, 8) })
	mod("newline damaged", func(b []byte) []byte { b[75] = '\n'; return b })
	mod("no createType", func(b []byte) []byte { copy(b[512:], bytes.Repeat([]byte{'#'}, 512)); return b })
	mod("GD beyond", func(b []byte) []byte {
		if binary64(b[56:]) == vmdkGDAtEnd {
			return le(b, len(b)-1024+56, 1<<31, 8)
		}
		return le(b, 56, 1<<31, 8)
	})
	// Every grain-table entry and directory entry pointing far away.
	mod("pointers beyond", func(b []byte) []byte {
		gd := binary64(b[56:])
		if gd == vmdkGDAtEnd {
			gd = binary64(b[len(b)-1024+56:])
		}
		return le(b, int(gd)*512, 0x7fffffff, 4)
	})
	mod("grain pointers beyond", func(b []byte) []byte {
		gd := binary64(b[56:])
		if gd == vmdkGDAtEnd {
			gd = binary64(b[len(b)-1024+56:])
		}
		gt := int(b[gd*512]) | int(b[gd*512+1])<<8 | int(b[gd*512+2])<<16
		return le(b, gt*512, 0x7ffffff0, 4)
	})
	return out
}

func binary64(b []byte) uint64 {
	var v uint64
	for i := 7; i >= 0; i-- {
		v = v<<8 | uint64(b[i])
	}
	return v
}

// TestVMDKCancelBusyWorkers cancels a write while the compression workers
// are busy: it stops before reading the source again. (Every writer's
// cancellation is in formats' conformance tests.)
func TestVMDKCancelBusyWorkers(t *testing.T) {
	dir := t.TempDir()
	raw, _ := vmdkSmall(t, dir, 8<<20, map[int64][]byte{0: testutil.Text(8 << 20)})
	src := imagetest.OpenRaw(t, raw)
	// The source has 128 grains, read once for the CID, then again for the
	// grains.
	for _, sub := range []string{MonolithicSparse, StreamOptimized} {
		ctx, cancel := context.WithCancel(context.Background())
		f, err := os.Create(filepath.Join(dir, "c.vmdk"))
		require.NoError(t, err)
		at := int64(64)
		if sub == StreamOptimized {
			at = 128 + 64
		}
		s := &imagetest.FaultySource{Source: src, Hook: func(n int64) error {
			if n == at {
				cancel()
			}
			return nil
		}}
		err = Write(ctx, f, s, image.Options{Subformat: sub, Workers: 2})
		require.ErrorIs(t, err, context.Canceled, sub)
		require.Less(t, s.Reads(), int64(256), sub)
		f.Close()
	}
}

// A streamOptimized file may come through a pipe.
func TestVMDKStreamToPipe(t *testing.T) {
	dir := t.TempDir()
	raw, files := vmdkSmall(t, dir, 5<<20, map[int64][]byte{4096: testutil.Text(3 << 20)})
	src, err := image.OpenRaw(raw)
	require.NoError(t, err)
	defer src.Close()
	r, w, err := os.Pipe()
	require.NoError(t, err)
	var got []byte
	done := make(chan struct{})
	go func() {
		defer close(done)
		var buf bytes.Buffer
		_, _ = buf.ReadFrom(r)
		got = buf.Bytes()
	}()
	require.NoError(t, Write(context.Background(), w, src, image.Options{Subformat: StreamOptimized}))
	w.Close()
	<-done
	want, err := os.ReadFile(files[StreamOptimized])
	require.NoError(t, err)
	// Only the extent file name in the descriptor differs.
	img, err := OpenAt(bytes.NewReader(got), int64(len(got)))
	require.NoError(t, err)
	imagetest.SameDisk(t, src, img)
	require.Equal(t, len(want), len(got))
}
