package vhd

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kiln-build/kiln/formats/image"
	"github.com/kiln-build/kiln/formats/internal/blocks"
	"github.com/kiln-build/kiln/formats/internal/imagetest"
	"github.com/kiln-build/kiln/formats/vhdx"
	"github.com/kiln-build/kiln/internal/testutil"
)

// vhdQemuReads has qemu-img judge path, a VHD of vsize bytes written from
// raw (srcSize bytes): info gives vpc and vsize; check is not an error
// (qemu's vpc driver has no check, which it reports with exit code 63);
// compare finds them identical. Without -s, images of different sizes
// compare identical when the larger one's extra tail reads as zeros; with
// -s (strict) they differ.
func vhdQemuReads(t *testing.T, raw, path string, srcSize, vsize int64) {
	testutil.Require(t, "qemu-img")
	info := imagetest.Info(t, "vpc", path)
	require.Equal(t, "vpc", info.Format)
	require.Equal(t, vsize, info.VirtualSize)
	out, rc := imagetest.Qemu(t, "check", "-f", "vpc", path)
	if rc == 63 {
		require.Contains(t, out, "does not support checks")
	} else {
		require.Equal(t, 0, rc, out)
	}
	out = imagetest.QemuOK(t, "compare", "-f", "raw", "-F", "vpc", raw, path)
	require.Contains(t, out, "Images are identical")
	// Strict mode also compares allocation status, which legitimately
	// differs (the writers drop zeros the raw file holds as data), so it is
	// only asserted to fail when the sizes differ.
	if srcSize != vsize {
		out, rc := imagetest.Qemu(t, "compare", "-s", "-f", "raw", "-F", "vpc", raw, path)
		require.Equal(t, 1, rc, out)
		require.Contains(t, out, "mismatch")
	}
}

func TestVHDFixed(t *testing.T) {
	for _, tc := range imagetest.Sizes {
		t.Run(tc.Name, func(t *testing.T) {
			dir := t.TempDir()
			rawPath, src := imagetest.Source(t, dir, tc.Size)
			out := imagetest.WriteFile(t, filepath.Join(dir, "out.vhd"), src, image.Options{}, Write)
			vsize := blocks.RoundUp(tc.Size, 1<<20)

			require.Equal(t, vsize+512, imagetest.FileSize(t, out))
			rawAlloc, alloc := imagetest.Allocated(t, rawPath), imagetest.Allocated(t, out)
			t.Logf("raw %d bytes allocated, fixed VHD %d", rawAlloc, alloc)
			require.LessOrEqual(t, alloc, rawAlloc+64<<10, "the fixed VHD is not sparse")

			imagetest.Problems(t, CheckAzure, out)

			imagetest.ReadsAs(t, Open, out, "vhd", "fixed", vsize, src)
			t.Run("qemu", func(t *testing.T) { vhdQemuReads(t, rawPath, out, tc.Size, vsize) })
		})
	}
}

func TestVHDDynamic(t *testing.T) {
	for _, tc := range imagetest.Sizes {
		t.Run(tc.Name, func(t *testing.T) {
			dir := t.TempDir()
			rawPath, src := imagetest.Source(t, dir, tc.Size)
			out := imagetest.WriteFile(t, filepath.Join(dir, "out.vhd"), src, image.Options{Subformat: "dynamic"}, Write)
			vsize := blocks.RoundUp(tc.Size, 512)

			imagetest.ReadsAs(t, Open, out, "vhd", "dynamic", vsize, src)
			problems, err := CheckAzure(out)
			require.NoError(t, err)
			require.NotEmpty(t, problems)

			t.Run("qemu", func(t *testing.T) {
				vhdQemuReads(t, rawPath, out, tc.Size, vsize)
				theirs := filepath.Join(dir, "qemu.vhd")
				imagetest.QemuOK(t, "convert", "-f", "raw", "-O", "vpc", "-o", "subformat=dynamic", rawPath, theirs)
				ours, qemu := imagetest.FileSize(t, out), imagetest.FileSize(t, theirs)
				oursA, qemuA := imagetest.Allocated(t, out), imagetest.Allocated(t, theirs)
				t.Logf("dynamic VHD: kiln %d bytes (%d allocated), qemu-img %d bytes (%d allocated)", ours, oursA, qemu, qemuA)
				require.LessOrEqual(t, ours, qemu)
				// Same data extents; allow for the host filesystem's own
				// metadata (extent tree blocks) differing.
				require.LessOrEqual(t, oursA, qemuA+64<<10)
			})
		})
	}
}

// TestVHDReadQemuImages opens images qemu-img made with the Kiln readers.
func TestVHDReadQemuImages(t *testing.T) {
	testutil.Require(t, "qemu-img")
	for _, tc := range imagetest.Sizes {
		t.Run(tc.Name, func(t *testing.T) {
			dir := t.TempDir()
			rawPath, src := imagetest.Source(t, dir, tc.Size)
			for _, c := range []struct {
				name, format, qfmt, sub string
				opts                    []string
			}{
				{"fixed.vhd", "vhd", "vpc", "fixed", []string{"-o", "subformat=fixed,force_size=on"}},
				{"dynamic.vhd", "vhd", "vpc", "dynamic", []string{"-o", "subformat=dynamic"}},
				{"dynamic-forced.vhd", "vhd", "vpc", "dynamic", []string{"-o", "subformat=dynamic,force_size=on"}},
				{"dynamic.vhdx", "vhdx", "vhdx", "dynamic", nil},
				{"block1m.vhdx", "vhdx", "vhdx", "dynamic", []string{"-o", "block_size=1M"}},
				{"block32m.vhdx", "vhdx", "vhdx", "dynamic", []string{"-o", "block_size=32M,log_size=4M"}},
				{"notpresent.vhdx", "vhdx", "vhdx", "dynamic", []string{"-o", "block_state_zero=off"}},
			} {
				t.Run(c.name, func(t *testing.T) {
					p := filepath.Join(dir, c.name)
					args := append([]string{"convert", "-f", "raw", "-O", c.qfmt}, c.opts...)
					imagetest.QemuOK(t, append(args, rawPath, p)...)
					info := imagetest.Info(t, c.qfmt, p)
					open := Open
					if c.format == "vhdx" {
						open = vhdx.Open
						imagetest.Problems(t, vhdx.Check, p)
					}
					imagetest.ReadsAs(t, open, p, c.format, c.sub, info.VirtualSize, src)
				})
			}
		})
	}
}

// TestVHDReadQemuFixedVHDX reads a fixed VHDX from qemu-img (small: qemu
// allocates all of it).
func TestVHDReadQemuFixedVHDX(t *testing.T) {
	testutil.Require(t, "qemu-img")
	dir := t.TempDir()
	rawPath, src := imagetest.Source(t, dir, 40<<20)
	p := filepath.Join(dir, "fixed.vhdx")
	imagetest.QemuOK(t, "convert", "-f", "raw", "-O", "vhdx", "-o", "subformat=fixed", rawPath, p)
	imagetest.Problems(t, vhdx.Check, p)
	img, err := vhdx.Open(p)
	require.NoError(t, err)
	defer img.Close()
	require.Equal(t, "fixed", img.Subformat())
	imagetest.SameDisk(t, src, img)
}

// TestVHDIdentifiers checks the identifiers derived from the contents: set,
// version 8, and different for different disks.
func TestVHDIdentifiers(t *testing.T) {
	dir := t.TempDir()
	_, src := imagetest.Source(t, dir, 32<<20)
	p := imagetest.WriteFile(t, filepath.Join(dir, "a.vhd"), src, image.Options{}, Write)
	b, err := os.ReadFile(p)
	require.NoError(t, err)
	footer := b[len(b)-512:]
	id := footer[vhdFtUniqueID : vhdFtUniqueID+16]
	require.NotEqual(t, make([]byte, 16), id)
	require.Equal(t, byte(0x80), id[6]&0xf0)
	require.Equal(t, "qem2", string(footer[vhdFtCreatorApp:vhdFtCreatorApp+4]))
	require.Equal(t, "Wi2k", string(footer[vhdFtCreatorOS:vhdFtCreatorOS+4]))
	require.Equal(t, []byte{0, 0, 0, 0}, footer[vhdFtTimestamp:vhdFtTimestamp+4])
	// CHS for 32 MiB (65536 sectors): 17 sectors, 4 heads, 963 cylinders.
	require.Equal(t, []byte{0x03, 0xc3, 4, 17}, footer[vhdFtGeometry:vhdFtGeometry+4])
}

func TestVHDGeometry(t *testing.T) {
	for _, c := range []struct {
		size int64
		chs  [3]int
	}{
		{20 << 20, [3]int{602, 4, 17}},
		{128 << 20, [3]int{963, 16, 17}},    // heads grow past 4
		{200 << 20, [3]int{825, 16, 31}},    // 31 sectors
		{1 << 30, [3]int{2080, 16, 63}},     // 63 sectors
		{127 << 30, [3]int{65278, 16, 255}}, // 255 sectors
		{128 << 30, [3]int{65535, 16, 255}}, // past 127.5 GiB: the maximum
		{4 << 40, [3]int{65535, 16, 255}},
	} {
		cyl, h, s := vhdGeometry(c.size)
		got := [3]int{int(cyl), int(h), int(s)}
		require.Equal(t, c.chs, got, "size %d", c.size)
		require.LessOrEqual(t, int64(cyl)*int64(h)*int64(s)*512, c.size)
	}
}

func TestVHDBadOptions(t *testing.T) {
	dir := t.TempDir()
	_, src := imagetest.Source(t, dir, 8<<20)
	f, err := os.Create(filepath.Join(dir, "out"))
	require.NoError(t, err)
	defer f.Close()
	require.Error(t, Write(context.Background(), f, src, image.Options{Subformat: "differencing"}))
	require.Error(t, vhdx.Write(context.Background(), f, src, image.Options{Subformat: "streamOptimized"}))
}

// vhdReseal recomputes a VHD footer's checksum.
func vhdReseal(footer []byte) {
	footer[vhdFtChecksum], footer[vhdFtChecksum+1], footer[vhdFtChecksum+2], footer[vhdFtChecksum+3] = 0, 0, 0, 0
	c := vhdChecksum(footer, vhdFtChecksum)
	footer[vhdFtChecksum], footer[vhdFtChecksum+1], footer[vhdFtChecksum+2], footer[vhdFtChecksum+3] = byte(c>>24), byte(c>>16), byte(c>>8), byte(c)
}

func TestCheckAzureVHD(t *testing.T) {
	dir := t.TempDir()
	_, src := imagetest.Source(t, dir, 64<<20-1000)
	good := imagetest.WriteFile(t, filepath.Join(dir, "good.vhd"), src, image.Options{}, Write)
	imagetest.Problems(t, CheckAzure, good)

	dyn := imagetest.WriteFile(t, filepath.Join(dir, "dynamic.vhd"), src, image.Options{Subformat: "dynamic"}, Write)

	smallRaw := filepath.Join(dir, "small.raw")
	imagetest.Raw(t, smallRaw, 10<<20, 1)
	small := imagetest.WriteFile(t, filepath.Join(dir, "small.vhd"), imagetest.OpenRaw(t, smallRaw), image.Options{}, Write)

	footerOf := func(b []byte) []byte { return b[len(b)-512:] }
	for _, c := range []struct {
		name  string
		path  string
		wants []string
	}{
		{"dynamic", dyn, []string{"Azure takes only fixed VHDs", "not the file size"}},
		{"small", small, []string{"smaller than Azure's minimum of 20 MiB"}},
		{"not MiB multiple", imagetest.Mutate(t, good, "odd.vhd", func(b []byte) []byte {
			// A fixed disk of 64 MiB - 512: footer 512 bytes earlier.
			f := append([]byte(nil), footerOf(b)...)
			b = b[:len(b)-1024]
			vsize := uint64(len(b))
			for i := range 8 {
				f[vhdFtCurSize+i] = byte(vsize >> (56 - 8*i))
				f[vhdFtOrigSize+i] = byte(vsize >> (56 - 8*i))
			}
			vhdReseal(f)
			return append(b, f...)
		}), []string{"not a multiple of 1 MiB"}},
		{"bad checksum", imagetest.Mutate(t, good, "sum.vhd", func(b []byte) []byte {
			footerOf(b)[vhdFtUniqueID] ^= 1
			return b
		}), []string{"checksum mismatch"}},
		{"bad cookie", imagetest.Mutate(t, good, "cookie.vhd", func(b []byte) []byte {
			copy(footerOf(b), "conectiX")
			return b
		}), []string{"not a VHD"}},
		{"truncated", imagetest.Mutate(t, good, "truncated.vhd", func(b []byte) []byte {
			return b[:len(b)-4096] // the footer is gone
		}), []string{"not a VHD"}},
		{"footer too early", imagetest.Mutate(t, good, "short.vhd", func(b []byte) []byte {
			// Lose the last MiB of data but keep the footer.
			f := append([]byte(nil), footerOf(b)...)
			return append(b[:len(b)-512-1<<20], f...)
		}), []string{"not the file size"}},
		{"padded", imagetest.Mutate(t, good, "padded.vhd", func(b []byte) []byte {
			f := append([]byte(nil), footerOf(b)...)
			return append(append(b[:len(b)-512], make([]byte, 4096)...), f...)
		}), []string{"not the file size"}},
		{"empty", imagetest.Mutate(t, good, "empty.vhd", func(b []byte) []byte { return nil }), []string{"not a VHD"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			problems := imagetest.Problems(t, CheckAzure, c.path, c.wants...)
			if len(c.wants) == 1 {
				require.Len(t, problems, 1, "%q", problems)
			}
		})
	}
	_, err := CheckAzure(filepath.Join(dir, "missing.vhd"))
	require.Error(t, err)
}

func TestOpenVHDMalformed(t *testing.T) {
	dir := t.TempDir()
	_, src := imagetest.Source(t, dir, 8<<20)
	fixed := imagetest.WriteFile(t, filepath.Join(dir, "fixed.vhd"), src, image.Options{}, Write)
	dyn := imagetest.WriteFile(t, filepath.Join(dir, "dynamic.vhd"), src, image.Options{Subformat: "dynamic"}, Write)
	tail := func(b []byte) []byte { return b[len(b)-512:] }
	setType := func(f []byte, typ byte) { f[vhdFtDiskType+3] = typ; vhdReseal(f) }
	dynHeader := func(b []byte) []byte { return b[512:1536] }
	resealDyn := func(h []byte) {
		for i := range 4 {
			h[vhdDhChecksum+i] = 0
		}
		c := vhdChecksum(h, vhdDhChecksum)
		h[vhdDhChecksum], h[vhdDhChecksum+1], h[vhdDhChecksum+2], h[vhdDhChecksum+3] = byte(c>>24), byte(c>>16), byte(c>>8), byte(c)
	}

	// Differencing: unsupported, not malformed.
	diff := imagetest.Mutate(t, dyn, "diff.vhd", func(b []byte) []byte {
		setType(tail(b), vhdTypeDiff)
		setType(b[:512], vhdTypeDiff)
		return b
	})
	_, err := Open(diff)
	require.ErrorIs(t, err, image.ErrUnsupported)

	// A dynamic disk whose end footer is damaged is read from its copy.
	img, err := Open(imagetest.Mutate(t, dyn, "tail.vhd", func(b []byte) []byte {
		tail(b)[100] ^= 0xff
		return b
	}))
	require.NoError(t, err)
	imagetest.SameDisk(t, src, img)
	img.Close()

	for _, c := range []struct {
		name string
		path string
	}{
		{"tiny", imagetest.Mutate(t, fixed, "tiny.vhd", func(b []byte) []byte { return b[:100] })},
		{"no footer", imagetest.Mutate(t, fixed, "nofooter.vhd", func(b []byte) []byte { return b[:len(b)-512] })},
		{"checksum", imagetest.Mutate(t, fixed, "sum.vhd", func(b []byte) []byte { tail(b)[70] ^= 1; return b })},
		{"type 7", imagetest.Mutate(t, fixed, "type.vhd", func(b []byte) []byte { setType(tail(b), 7); return b })},
		{"fixed too big", imagetest.Mutate(t, fixed, "big.vhd", func(b []byte) []byte {
			tail(b)[vhdFtCurSize] = 1
			vhdReseal(tail(b))
			return b
		})},
		{"dyn cookie", imagetest.Mutate(t, dyn, "dcookie.vhd", func(b []byte) []byte { copy(dynHeader(b), "cxsparsX"); return b })},
		{"dyn checksum", imagetest.Mutate(t, dyn, "dsum.vhd", func(b []byte) []byte { dynHeader(b)[40] ^= 1; return b })},
		{"block size", imagetest.Mutate(t, dyn, "bs.vhd", func(b []byte) []byte {
			dynHeader(b)[vhdDhBlockSize+3] = 3
			resealDyn(dynHeader(b))
			return b
		})},
		{"BAT outside", imagetest.Mutate(t, dyn, "bat.vhd", func(b []byte) []byte {
			dynHeader(b)[vhdDhTableOff] = 0x7f
			resealDyn(dynHeader(b))
			return b
		})},
		{"few entries", imagetest.Mutate(t, dyn, "entries.vhd", func(b []byte) []byte {
			dynHeader(b)[vhdDhMaxEntries+3] = 1
			resealDyn(dynHeader(b))
			return b
		})},
		{"header offset", imagetest.Mutate(t, dyn, "hdr.vhd", func(b []byte) []byte {
			for _, f := range [][]byte{b[:512], tail(b)} {
				f[vhdFtDataOffset] = 0x10
				vhdReseal(f)
			}
			return b
		})},
	} {
		t.Run(c.name, func(t *testing.T) {
			img, err := Open(c.path)
			if err == nil {
				img.Close()
			}
			var fe *image.FormatError
			require.ErrorAs(t, err, &fe)
			require.Equal(t, "vhd", fe.Format)
		})
	}

	// A block pointing past the end of the file: opens, reading fails.
	trunc := imagetest.Mutate(t, dyn, "trunc.vhd", func(b []byte) []byte {
		f := append([]byte(nil), tail(b)...)
		return append(b[:len(b)-512-1<<20], f...)
	})
	img, err = Open(trunc)
	require.NoError(t, err)
	defer img.Close()
	buf := make([]byte, 8<<20)
	_, err = img.ReadAt(buf, 0)
	var fe *image.FormatError
	require.ErrorAs(t, err, &fe)
}

// TestVHDBitmap checks the dynamic reader honours sector bitmaps: a sector
// whose bit is clear reads as zeros even if the file holds data there.
func TestVHDBitmap(t *testing.T) {
	dir := t.TempDir()
	_, src := imagetest.Source(t, dir, 8<<20)
	dyn := imagetest.WriteFile(t, filepath.Join(dir, "dynamic.vhd"), src, image.Options{Subformat: "dynamic"}, Write)
	b, err := os.ReadFile(dyn)
	require.NoError(t, err)
	// Block 0 is the first after the BAT (1536 + 512 bytes for 4 blocks).
	bm := 2048
	require.Equal(t, byte(0xff), b[bm])
	b[bm] = 0x7f // sector 0 absent
	require.NoError(t, os.WriteFile(dyn, b, 0o644))
	img, err := Open(dyn)
	require.NoError(t, err)
	defer img.Close()
	got := make([]byte, 1024)
	_, err = img.ReadAt(got, 0)
	require.NoError(t, err)
	want := make([]byte, 1024)
	_, err = src.ReadAt(want, 0)
	require.NoError(t, err)
	require.Equal(t, make([]byte, 512), got[:512])
	require.Equal(t, want[512:], got[512:])
	// An unaligned read across the absent sector.
	_, err = img.ReadAt(got[:100], 500)
	require.NoError(t, err)
	require.Equal(t, make([]byte, 12), got[:12])
	require.Equal(t, want[512:600], got[12:100])
}
