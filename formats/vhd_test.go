package formats

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kiln-build/kiln/internal/sparse"
	"github.com/kiln-build/kiln/internal/testutil"
)

// vhdCheckQemuVPC asserts qemu-img check of a VHD is not an error; qemu's
// vpc driver has no check, which it reports with exit code 63.
func vhdCheckQemuVPC(t *testing.T, path string) {
	out, rc := vhdQemu(t, "check", "-f", "vpc", path)
	if rc == 63 {
		require.Contains(t, out, "does not support checks")
		return
	}
	require.Equal(t, 0, rc, out)
}

// vhdCompareQemu runs qemu-img compare. Without -s, images of different
// sizes compare identical when the larger one's extra tail reads as zeros;
// with -s (strict) they differ.
func vhdCompareQemu(t *testing.T, raw, format, path string, srcSize, vsize int64) {
	out := vhdQemuOK(t, "compare", "-f", "raw", "-F", format, raw, path)
	require.Contains(t, out, "Images are identical")
	// Strict mode also compares allocation status, which legitimately
	// differs (the writers drop zeros the raw file holds as data), so it is
	// only asserted to fail when the sizes differ.
	if srcSize != vsize {
		out, rc := vhdQemu(t, "compare", "-s", "-f", "raw", "-F", format, raw, path)
		require.Equal(t, 1, rc, out)
		require.Contains(t, out, "mismatch")
	}
}

func TestVHDFixed(t *testing.T) {
	for _, tc := range vhdTestSizes {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			rawPath, src := vhdTestSource(t, dir, tc.size)
			out := filepath.Join(dir, "out.vhd")
			vhdWriteFile(t, out, src, Options{}, WriteVHD)
			vsize := vhdRoundUp(tc.size, 1<<20)

			require.Equal(t, vsize+512, vhdFileSize(t, out))
			rawAlloc, alloc := vhdAllocated(t, rawPath), vhdAllocated(t, out)
			t.Logf("raw %d bytes allocated, fixed VHD %d", rawAlloc, alloc)
			require.LessOrEqual(t, alloc, rawAlloc+64<<10, "the fixed VHD is not sparse")

			problems, err := CheckAzureVHD(out)
			require.NoError(t, err)
			require.Empty(t, problems)

			img, err := OpenVHD(out)
			require.NoError(t, err)
			defer img.Close()
			require.Equal(t, "vhd", img.Format())
			require.Equal(t, "fixed", img.Subformat())
			require.Equal(t, vsize, img.Size())
			vhdSameDisk(t, src, img)
			vhdExtentsCover(t, src, img)

			t.Run("qemu", func(t *testing.T) {
				testutil.Require(t, "qemu-img")
				info := vhdInfo(t, "vpc", out)
				require.Equal(t, "vpc", info.Format)
				require.Equal(t, vsize, info.VirtualSize)
				vhdCheckQemuVPC(t, out)
				vhdCompareQemu(t, rawPath, "vpc", out, tc.size, vsize)
			})
		})
	}
}

func TestVHDDynamic(t *testing.T) {
	for _, tc := range vhdTestSizes {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			rawPath, src := vhdTestSource(t, dir, tc.size)
			out := filepath.Join(dir, "out.vhd")
			vhdWriteFile(t, out, src, Options{Subformat: "dynamic"}, WriteVHD)
			vsize := vhdRoundUp(tc.size, 512)

			img, err := OpenVHD(out)
			require.NoError(t, err)
			defer img.Close()
			require.Equal(t, "dynamic", img.Subformat())
			require.Equal(t, vsize, img.Size())
			vhdSameDisk(t, src, img)
			vhdExtentsCover(t, src, img)

			problems, err := CheckAzureVHD(out)
			require.NoError(t, err)
			require.NotEmpty(t, problems)

			t.Run("qemu", func(t *testing.T) {
				testutil.Require(t, "qemu-img")
				info := vhdInfo(t, "vpc", out)
				require.Equal(t, "vpc", info.Format)
				require.Equal(t, vsize, info.VirtualSize)
				vhdCheckQemuVPC(t, out)
				vhdCompareQemu(t, rawPath, "vpc", out, tc.size, vsize)

				theirs := filepath.Join(dir, "qemu.vhd")
				vhdQemuOK(t, "convert", "-f", "raw", "-O", "vpc", "-o", "subformat=dynamic", rawPath, theirs)
				ours, qemu := vhdFileSize(t, out), vhdFileSize(t, theirs)
				oursA, qemuA := vhdAllocated(t, out), vhdAllocated(t, theirs)
				t.Logf("dynamic VHD: kiln %d bytes (%d allocated), qemu-img %d bytes (%d allocated)", ours, oursA, qemu, qemuA)
				require.LessOrEqual(t, ours, qemu)
				// Same data extents; allow for the host filesystem's own
				// metadata (extent tree blocks) differing.
				require.LessOrEqual(t, oursA, qemuA+64<<10)
			})
		})
	}
}

func TestVHDX(t *testing.T) {
	for _, tc := range vhdTestSizes {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			rawPath, src := vhdTestSource(t, dir, tc.size)
			out := filepath.Join(dir, "out.vhdx")
			vhdWriteFile(t, out, src, Options{}, WriteVHDX)
			vsize := vhdRoundUp(tc.size, 512)

			problems, err := CheckVHDX(out)
			require.NoError(t, err)
			require.Empty(t, problems)

			img, err := OpenVHDX(out)
			require.NoError(t, err)
			defer img.Close()
			require.Equal(t, "vhdx", img.Format())
			require.Equal(t, "dynamic", img.Subformat())
			require.Equal(t, vsize, img.Size())
			vhdSameDisk(t, src, img)
			vhdExtentsCover(t, src, img)

			t.Run("qemu", func(t *testing.T) {
				testutil.Require(t, "qemu-img")
				out2 := vhdQemuOK(t, "check", "-f", "vhdx", out)
				require.Contains(t, out2, "No errors were found")
				info := vhdInfo(t, "vhdx", out)
				require.Equal(t, "vhdx", info.Format)
				require.Equal(t, vsize, info.VirtualSize)
				vhdCompareQemu(t, rawPath, "vhdx", out, tc.size, vsize)

				theirs := filepath.Join(dir, "qemu.vhdx")
				vhdQemuOK(t, "convert", "-f", "raw", "-O", "vhdx", rawPath, theirs)
				ours, qemu := vhdFileSize(t, out), vhdFileSize(t, theirs)
				oursA, qemuA := vhdAllocated(t, out), vhdAllocated(t, theirs)
				t.Logf("VHDX: kiln %d bytes (%d allocated), qemu-img %d bytes (%d allocated)", ours, oursA, qemu, qemuA)
				require.LessOrEqual(t, ours, qemu)
				require.LessOrEqual(t, oursA, qemuA)
			})
		})
	}
}

func TestVHDXFixed(t *testing.T) {
	dir := t.TempDir()
	rawPath, src := vhdTestSource(t, dir, 64<<20+4096)
	out := filepath.Join(dir, "out.vhdx")
	vhdWriteFile(t, out, src, Options{Subformat: "fixed"}, WriteVHDX)
	problems, err := CheckVHDX(out)
	require.NoError(t, err)
	require.Empty(t, problems)
	img, err := OpenVHDX(out)
	require.NoError(t, err)
	defer img.Close()
	require.Equal(t, "fixed", img.Subformat())
	vhdSameDisk(t, src, img)
	require.LessOrEqual(t, vhdAllocated(t, out), vhdAllocated(t, rawPath)+5<<20, "the fixed VHDX is not sparse")

	testutil.Require(t, "qemu-img")
	require.Contains(t, vhdQemuOK(t, "check", "-f", "vhdx", out), "No errors were found")
	require.Contains(t, vhdQemuOK(t, "compare", "-f", "raw", "-F", "vhdx", rawPath, out), "Images are identical")
}

// TestVHDReadQemuImages opens images qemu-img made with the Kiln readers.
func TestVHDReadQemuImages(t *testing.T) {
	testutil.Require(t, "qemu-img")
	for _, tc := range vhdTestSizes {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			rawPath, src := vhdTestSource(t, dir, tc.size)
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
					vhdQemuOK(t, append(args, rawPath, p)...)
					info := vhdInfo(t, c.qfmt, p)
					open := OpenVHD
					if c.format == "vhdx" {
						open = OpenVHDX
						problems, err := CheckVHDX(p)
						require.NoError(t, err)
						require.Empty(t, problems)
					}
					img, err := open(p)
					require.NoError(t, err)
					defer img.Close()
					require.Equal(t, c.format, img.Format())
					require.Equal(t, c.sub, img.Subformat())
					require.Equal(t, info.VirtualSize, img.Size())
					vhdSameDisk(t, src, img)
					vhdExtentsCover(t, src, img)
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
	rawPath, src := vhdTestSource(t, dir, 40<<20)
	p := filepath.Join(dir, "fixed.vhdx")
	vhdQemuOK(t, "convert", "-f", "raw", "-O", "vhdx", "-o", "subformat=fixed", rawPath, p)
	problems, err := CheckVHDX(p)
	require.NoError(t, err)
	require.Empty(t, problems)
	img, err := OpenVHDX(p)
	require.NoError(t, err)
	defer img.Close()
	require.Equal(t, "fixed", img.Subformat())
	vhdSameDisk(t, src, img)
}

func TestVHDDeterministic(t *testing.T) {
	dir := t.TempDir()
	_, src := vhdTestSource(t, dir, 96<<20+777)
	otherPath := filepath.Join(dir, "other.raw")
	vhdTestRaw(t, otherPath, 96<<20+777, 99)
	other := vhdOpenRaw(t, otherPath)
	for _, c := range []struct {
		name  string
		o     Options
		write func(context.Context, *os.File, Source, Options) error
	}{
		{"fixed.vhd", Options{}, WriteVHD},
		{"dynamic.vhd", Options{Subformat: "dynamic"}, WriteVHD},
		{"dynamic.vhdx", Options{}, WriteVHDX},
		{"fixed.vhdx", Options{Subformat: "fixed"}, WriteVHDX},
	} {
		t.Run(c.name, func(t *testing.T) {
			a, b, o := filepath.Join(dir, "a-"+c.name), filepath.Join(dir, "b-"+c.name), filepath.Join(dir, "o-"+c.name)
			vhdWriteFile(t, a, src, c.o, c.write)
			// Write over an existing, larger file: it must be truncated.
			require.NoError(t, os.WriteFile(b, make([]byte, 200<<20), 0o644))
			vhdWriteFile(t, b, src, c.o, c.write)
			vhdWriteFile(t, o, other, c.o, c.write)
			ha, err := sparse.SHA256(a)
			require.NoError(t, err)
			hb, err := sparse.SHA256(b)
			require.NoError(t, err)
			ho, err := sparse.SHA256(o)
			require.NoError(t, err)
			require.Equal(t, ha, hb)
			require.NotEqual(t, ha, ho)
		})
	}
}

// TestVHDIdentifiers checks the identifiers derived from the contents: set,
// version 8, and different for different disks.
func TestVHDIdentifiers(t *testing.T) {
	dir := t.TempDir()
	_, src := vhdTestSource(t, dir, 32<<20)
	p := filepath.Join(dir, "a.vhd")
	vhdWriteFile(t, p, src, Options{}, WriteVHD)
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

func TestVHDCancel(t *testing.T) {
	dir := t.TempDir()
	_, src := vhdTestSource(t, dir, 64<<20)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for _, w := range []struct {
		o     Options
		write func(context.Context, *os.File, Source, Options) error
	}{{Options{}, WriteVHD}, {Options{Subformat: "dynamic"}, WriteVHD}, {Options{}, WriteVHDX}} {
		f, err := os.Create(filepath.Join(dir, "out"))
		require.NoError(t, err)
		require.ErrorIs(t, w.write(ctx, f, src, w.o), context.Canceled)
		f.Close()
	}
}

func TestVHDBadOptions(t *testing.T) {
	dir := t.TempDir()
	_, src := vhdTestSource(t, dir, 8<<20)
	f, err := os.Create(filepath.Join(dir, "out"))
	require.NoError(t, err)
	defer f.Close()
	require.Error(t, WriteVHD(context.Background(), f, src, Options{Subformat: "differencing"}))
	require.Error(t, WriteVHDX(context.Background(), f, src, Options{Subformat: "streamOptimized"}))
}

// vhdMutate copies src to a new file in dir and applies fn to its bytes.
func vhdMutate(t *testing.T, src, name string, fn func(b []byte) []byte) string {
	t.Helper()
	b, err := os.ReadFile(src)
	require.NoError(t, err)
	p := filepath.Join(filepath.Dir(src), name)
	require.NoError(t, os.WriteFile(p, fn(b), 0o644))
	return p
}

// vhdReseal recomputes a VHD footer's checksum.
func vhdReseal(footer []byte) {
	footer[vhdFtChecksum], footer[vhdFtChecksum+1], footer[vhdFtChecksum+2], footer[vhdFtChecksum+3] = 0, 0, 0, 0
	c := vhdChecksum(footer, vhdFtChecksum)
	footer[vhdFtChecksum], footer[vhdFtChecksum+1], footer[vhdFtChecksum+2], footer[vhdFtChecksum+3] = byte(c>>24), byte(c>>16), byte(c>>8), byte(c)
}

// vhdHasProblem asserts one of problems contains want.
func vhdHasProblem(t *testing.T, problems []string, want string) {
	t.Helper()
	for _, p := range problems {
		if strings.Contains(p, want) {
			return
		}
	}
	t.Fatalf("no problem mentions %q in %q", want, problems)
}

func TestCheckAzureVHD(t *testing.T) {
	dir := t.TempDir()
	_, src := vhdTestSource(t, dir, 64<<20-1000)
	good := filepath.Join(dir, "good.vhd")
	vhdWriteFile(t, good, src, Options{}, WriteVHD)
	problems, err := CheckAzureVHD(good)
	require.NoError(t, err)
	require.Empty(t, problems)

	dyn := filepath.Join(dir, "dynamic.vhd")
	vhdWriteFile(t, dyn, src, Options{Subformat: "dynamic"}, WriteVHD)

	smallRaw := filepath.Join(dir, "small.raw")
	vhdTestRaw(t, smallRaw, 10<<20, 1)
	small := filepath.Join(dir, "small.vhd")
	vhdWriteFile(t, small, vhdOpenRaw(t, smallRaw), Options{}, WriteVHD)

	footerOf := func(b []byte) []byte { return b[len(b)-512:] }
	for _, c := range []struct {
		name  string
		path  string
		wants []string
	}{
		{"dynamic", dyn, []string{"Azure takes only fixed VHDs", "not the file size"}},
		{"small", small, []string{"smaller than Azure's minimum of 20 MiB"}},
		{"not MiB multiple", vhdMutate(t, good, "odd.vhd", func(b []byte) []byte {
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
		{"bad checksum", vhdMutate(t, good, "sum.vhd", func(b []byte) []byte {
			footerOf(b)[vhdFtUniqueID] ^= 1
			return b
		}), []string{"checksum mismatch"}},
		{"bad cookie", vhdMutate(t, good, "cookie.vhd", func(b []byte) []byte {
			copy(footerOf(b), "conectiX")
			return b
		}), []string{"not a VHD"}},
		{"truncated", vhdMutate(t, good, "truncated.vhd", func(b []byte) []byte {
			return b[:len(b)-4096] // the footer is gone
		}), []string{"not a VHD"}},
		{"footer too early", vhdMutate(t, good, "short.vhd", func(b []byte) []byte {
			// Lose the last MiB of data but keep the footer.
			f := append([]byte(nil), footerOf(b)...)
			return append(b[:len(b)-512-1<<20], f...)
		}), []string{"not the file size"}},
		{"padded", vhdMutate(t, good, "padded.vhd", func(b []byte) []byte {
			f := append([]byte(nil), footerOf(b)...)
			return append(append(b[:len(b)-512], make([]byte, 4096)...), f...)
		}), []string{"not the file size"}},
		{"empty", vhdMutate(t, good, "empty.vhd", func(b []byte) []byte { return nil }), []string{"not a VHD"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			problems, err := CheckAzureVHD(c.path)
			require.NoError(t, err)
			for _, w := range c.wants {
				vhdHasProblem(t, problems, w)
			}
			if len(c.wants) == 1 {
				require.Len(t, problems, 1, "%q", problems)
			}
		})
	}
	_, err = CheckAzureVHD(filepath.Join(dir, "missing.vhd"))
	require.Error(t, err)
}

func TestOpenVHDMalformed(t *testing.T) {
	dir := t.TempDir()
	_, src := vhdTestSource(t, dir, 8<<20)
	fixed := filepath.Join(dir, "fixed.vhd")
	vhdWriteFile(t, fixed, src, Options{}, WriteVHD)
	dyn := filepath.Join(dir, "dynamic.vhd")
	vhdWriteFile(t, dyn, src, Options{Subformat: "dynamic"}, WriteVHD)
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
	diff := vhdMutate(t, dyn, "diff.vhd", func(b []byte) []byte {
		setType(tail(b), vhdTypeDiff)
		setType(b[:512], vhdTypeDiff)
		return b
	})
	_, err := OpenVHD(diff)
	require.ErrorIs(t, err, ErrUnsupported)

	// A dynamic disk whose end footer is damaged is read from its copy.
	img, err := OpenVHD(vhdMutate(t, dyn, "tail.vhd", func(b []byte) []byte {
		tail(b)[100] ^= 0xff
		return b
	}))
	require.NoError(t, err)
	vhdSameDisk(t, src, img)
	img.Close()

	for _, c := range []struct {
		name string
		path string
	}{
		{"tiny", vhdMutate(t, fixed, "tiny.vhd", func(b []byte) []byte { return b[:100] })},
		{"no footer", vhdMutate(t, fixed, "nofooter.vhd", func(b []byte) []byte { return b[:len(b)-512] })},
		{"checksum", vhdMutate(t, fixed, "sum.vhd", func(b []byte) []byte { tail(b)[70] ^= 1; return b })},
		{"type 7", vhdMutate(t, fixed, "type.vhd", func(b []byte) []byte { setType(tail(b), 7); return b })},
		{"fixed too big", vhdMutate(t, fixed, "big.vhd", func(b []byte) []byte {
			tail(b)[vhdFtCurSize] = 1
			vhdReseal(tail(b))
			return b
		})},
		{"dyn cookie", vhdMutate(t, dyn, "dcookie.vhd", func(b []byte) []byte { copy(dynHeader(b), "cxsparsX"); return b })},
		{"dyn checksum", vhdMutate(t, dyn, "dsum.vhd", func(b []byte) []byte { dynHeader(b)[40] ^= 1; return b })},
		{"block size", vhdMutate(t, dyn, "bs.vhd", func(b []byte) []byte {
			dynHeader(b)[vhdDhBlockSize+3] = 3
			resealDyn(dynHeader(b))
			return b
		})},
		{"BAT outside", vhdMutate(t, dyn, "bat.vhd", func(b []byte) []byte {
			dynHeader(b)[vhdDhTableOff] = 0x7f
			resealDyn(dynHeader(b))
			return b
		})},
		{"few entries", vhdMutate(t, dyn, "entries.vhd", func(b []byte) []byte {
			dynHeader(b)[vhdDhMaxEntries+3] = 1
			resealDyn(dynHeader(b))
			return b
		})},
		{"header offset", vhdMutate(t, dyn, "hdr.vhd", func(b []byte) []byte {
			for _, f := range [][]byte{b[:512], tail(b)} {
				f[vhdFtDataOffset] = 0x10
				vhdReseal(f)
			}
			return b
		})},
	} {
		t.Run(c.name, func(t *testing.T) {
			img, err := OpenVHD(c.path)
			if err == nil {
				img.Close()
			}
			var fe *FormatError
			require.ErrorAs(t, err, &fe)
			require.Equal(t, "vhd", fe.Format)
		})
	}

	// A block pointing past the end of the file: opens, reading fails.
	trunc := vhdMutate(t, dyn, "trunc.vhd", func(b []byte) []byte {
		f := append([]byte(nil), tail(b)...)
		return append(b[:len(b)-512-1<<20], f...)
	})
	img, err = OpenVHD(trunc)
	require.NoError(t, err)
	defer img.Close()
	buf := make([]byte, 8<<20)
	_, err = img.ReadAt(buf, 0)
	var fe *FormatError
	require.ErrorAs(t, err, &fe)
}

// TestVHDBitmap checks the dynamic reader honours sector bitmaps: a sector
// whose bit is clear reads as zeros even if the file holds data there.
func TestVHDBitmap(t *testing.T) {
	dir := t.TempDir()
	_, src := vhdTestSource(t, dir, 8<<20)
	dyn := filepath.Join(dir, "dynamic.vhd")
	vhdWriteFile(t, dyn, src, Options{Subformat: "dynamic"}, WriteVHD)
	b, err := os.ReadFile(dyn)
	require.NoError(t, err)
	// Block 0 is the first after the BAT (1536 + 512 bytes for 4 blocks).
	bm := 2048
	require.Equal(t, byte(0xff), b[bm])
	b[bm] = 0x7f // sector 0 absent
	require.NoError(t, os.WriteFile(dyn, b, 0o644))
	img, err := OpenVHD(dyn)
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

func TestVHDReadAtEdges(t *testing.T) {
	dir := t.TempDir()
	_, src := vhdTestSource(t, dir, 8<<20+100)
	for _, c := range []struct {
		name  string
		o     Options
		write func(context.Context, *os.File, Source, Options) error
		open  func(string) (Image, error)
	}{
		{"fixed.vhd", Options{}, WriteVHD, OpenVHD},
		{"dynamic.vhd", Options{Subformat: "dynamic"}, WriteVHD, OpenVHD},
		{"dynamic.vhdx", Options{}, WriteVHDX, OpenVHDX},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := filepath.Join(dir, c.name)
			vhdWriteFile(t, p, src, c.o, c.write)
			img, err := c.open(p)
			require.NoError(t, err)
			defer img.Close()
			n, err := img.ReadAt(make([]byte, 10), img.Size())
			require.Equal(t, 0, n)
			require.ErrorIs(t, err, io.EOF)
			_, err = img.ReadAt(make([]byte, 10), -1)
			require.Error(t, err)
			n, err = img.ReadAt(nil, 0)
			require.Equal(t, 0, n)
			require.NoError(t, err)
		})
	}
}

// vhdFaultySource wraps a Source: its hook runs before every read and may
// fail it.
type vhdFaultySource struct {
	Source
	hook func() error
}

func (s vhdFaultySource) ReadAt(p []byte, off int64) (int, error) {
	if err := s.hook(); err != nil {
		return 0, err
	}
	return s.Source.ReadAt(p, off)
}

// TestVHDWriterErrors checks the writers stop on cancellation mid-way, on a
// source read error and on an output write error, and report them.
func TestVHDWriterErrors(t *testing.T) {
	dir := t.TempDir()
	_, src := vhdTestSource(t, dir, 64<<20)
	writers := []struct {
		name  string
		o     Options
		write func(context.Context, *os.File, Source, Options) error
	}{
		{"fixed.vhd", Options{}, WriteVHD},
		{"dynamic.vhd", Options{Subformat: "dynamic"}, WriteVHD},
		{"dynamic.vhdx", Options{}, WriteVHDX},
	}
	for _, w := range writers {
		t.Run(w.name, func(t *testing.T) {
			out := filepath.Join(dir, w.name)

			ctx, cancel := context.WithCancel(context.Background())
			reads := 0
			canceling := vhdFaultySource{src, func() error {
				if reads++; reads == 2 {
					cancel()
				}
				return nil
			}}
			f, err := os.Create(out)
			require.NoError(t, err)
			require.ErrorIs(t, w.write(ctx, f, canceling, w.o), context.Canceled)
			f.Close()

			boom := errors.New("disk on fire")
			failing := vhdFaultySource{src, func() error { return boom }}
			f, err = os.Create(out)
			require.NoError(t, err)
			require.ErrorIs(t, w.write(context.Background(), f, failing, w.o), boom)
			f.Close()

			f, err = os.Open(out) // read-only: writes fail
			require.NoError(t, err)
			require.Error(t, w.write(context.Background(), f, src, w.o))
			f.Close()
		})
	}
}
