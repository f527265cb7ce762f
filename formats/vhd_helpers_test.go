package formats

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"
)

// vhdTestRaw writes a sparse raw disk of size bytes at path, with data in a
// few places chosen to catch off-by-ones: the start, runs crossing 1 MiB
// and 2 MiB boundaries, a single byte, an explicitly written zero MiB, the
// middle, and the last bytes (a partial sector when size is odd). seed
// varies the bytes. It returns the number of data bytes written.
func vhdTestRaw(t testing.TB, path string, size int64, seed uint64) int64 {
	t.Helper()
	f, err := os.Create(path)
	require.NoError(t, err)
	defer f.Close()
	require.NoError(t, f.Truncate(size))
	rng := rand.New(rand.NewPCG(seed, 0x6b696c6e))
	var data int64
	put := func(off, n int64) {
		if off < 0 || off >= size {
			return
		}
		n = min(n, size-off)
		b := make([]byte, n)
		for i := range b {
			// Text-like bytes with some zero runs, as in real disks.
			if rng.IntN(64) == 0 {
				continue
			}
			b[i] = byte(' ' + rng.IntN(95))
		}
		_, err := f.WriteAt(b, off)
		require.NoError(t, err)
		data += n
	}
	put(0, 300<<10)
	put(4<<20-5000, 12000)
	put(33<<20+513, 1)
	_, err = f.WriteAt(make([]byte, 1<<20), 10<<20) // explicit zeros
	require.NoError(t, err)
	put(size/2, 3<<20)
	put(size/2+7<<20+100, 1<<20)
	put(size-3000, 3000)
	return data
}

// vhdQemu runs qemu-img and returns its output and exit code.
func vhdQemu(t testing.TB, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command("qemu-img", args...)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return string(out), ee.ExitCode()
	}
	require.NoError(t, err, "qemu-img %v", args)
	return string(out), 0
}

func vhdQemuOK(t testing.TB, args ...string) string {
	t.Helper()
	out, rc := vhdQemu(t, args...)
	require.Equal(t, 0, rc, "qemu-img %v:\n%s", args, out)
	return out
}

type vhdQemuInfo struct {
	Format      string `json:"format"`
	VirtualSize int64  `json:"virtual-size"`
	ActualSize  int64  `json:"actual-size"`
}

func vhdInfo(t testing.TB, format, path string) vhdQemuInfo {
	t.Helper()
	var info vhdQemuInfo
	out := vhdQemuOK(t, "info", "-f", format, "--output=json", path)
	require.NoError(t, json.Unmarshal([]byte(out), &info), out)
	return info
}

// vhdAllocated is the space the file takes on disk.
func vhdAllocated(t testing.TB, path string) int64 {
	t.Helper()
	var st syscall.Stat_t
	require.NoError(t, syscall.Stat(path, &st))
	return st.Blocks * 512
}

func vhdFileSize(t testing.TB, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	require.NoError(t, err)
	return fi.Size()
}

// vhdWriteFile runs a writer into a new file at path.
func vhdWriteFile(t testing.TB, path string, src Source, o Options,
	write func(context.Context, *os.File, Source, Options) error) {
	t.Helper()
	f, err := os.Create(path)
	require.NoError(t, err)
	require.NoError(t, write(context.Background(), f, src, o))
	require.NoError(t, f.Close())
}

// vhdOpenRaw opens a raw file as a Source, closed with the test.
func vhdOpenRaw(t testing.TB, path string) *RawFile {
	t.Helper()
	r, err := OpenRaw(path)
	require.NoError(t, err)
	t.Cleanup(func() { r.Close() })
	return r
}

// vhdSameDisk compares two virtual disks byte for byte in 4 MiB chunks: got
// must hold want's bytes followed by nothing but zeros.
func vhdSameDisk(t testing.TB, want, got Source) {
	t.Helper()
	require.GreaterOrEqual(t, got.Size(), want.Size())
	const chunk = 4 << 20
	a, b := make([]byte, chunk), make([]byte, chunk)
	for off := int64(0); off < got.Size(); off += chunk {
		n := min(chunk, got.Size()-off)
		m, err := got.ReadAt(b[:n], off)
		if err != nil && !(errors.Is(err, io.EOF) && int64(m) == n) {
			require.NoError(t, err, "read at %d", off)
		}
		wn := max(0, min(n, want.Size()-off))
		if wn > 0 {
			m, err := want.ReadAt(a[:wn], off)
			if err != nil && !(errors.Is(err, io.EOF) && int64(m) == wn) {
				require.NoError(t, err)
			}
		}
		if !bytes.Equal(a[:wn], b[:wn]) {
			for i := range wn {
				if a[i] != b[i] {
					t.Fatalf("disks differ at byte %d: want %#x, got %#x", off+i, a[i], b[i])
				}
			}
		}
		if !isZero(b[wn:n]) {
			t.Fatalf("bytes past the source's end, in [%d, %d), are not zero", off+wn, off+n)
		}
	}
	// Reading at the end reports EOF.
	n, err := got.ReadAt(make([]byte, 10), got.Size()-5)
	require.Equal(t, 5, n)
	require.ErrorIs(t, err, io.EOF)
}

// vhdExtentsCover checks that the image's extents cover every non-zero
// byte of want (a raw source).
func vhdExtentsCover(t testing.TB, want Source, img Image) {
	t.Helper()
	exts, err := img.Extents()
	require.NoError(t, err)
	covered := func(off, n int64) bool {
		for _, e := range exts {
			if off >= e.Off && off+n <= e.Off+e.Len {
				return true
			}
		}
		return false
	}
	require.NoError(t, ForEachBlock(want, 64<<10, func(off int64, data []byte) error {
		for i := 0; i < len(data); i += 512 {
			j := min(i+512, len(data))
			if !isZero(data[i:j]) && !covered(off+int64(i), int64(j-i)) {
				t.Fatalf("data at %d outside the image's extents %v", off+int64(i), exts)
			}
		}
		return nil
	}))
	var prev int64 = -1
	for _, e := range exts {
		require.Greater(t, e.Len, int64(0))
		require.Greater(t, e.Off, prev, "extents out of order or touching: %v", exts)
		require.LessOrEqual(t, e.Off+e.Len, img.Size())
		prev = e.Off + e.Len
	}
}

// vhdTestSizes are the source sizes the qemu tests use: one not a multiple
// of 1 MiB (not even of a sector), one exact.
var vhdTestSizes = []struct {
	name string
	size int64
}{
	{"1GiB+12345", 1<<30 + 12345},
	{"64MiB", 64 << 20},
}

// vhdTestSource makes a test raw disk in dir.
func vhdTestSource(t testing.TB, dir string, size int64) (string, *RawFile) {
	t.Helper()
	p := filepath.Join(dir, "src.raw")
	vhdTestRaw(t, p, size, uint64(size))
	return p, vhdOpenRaw(t, p)
}
