// Package imagetest holds the test helpers of the format packages: test raw
// disks (Raw, image.Source, GPTDisk), qemu-img as the judge (Qemu, QemuOK, Info),
// and comparisons of virtual disks (SameDisk, ExtentsCover). It is imported
// by tests only.
package imagetest

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
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kiln-build/kiln/formats/image"
	"github.com/kiln-build/kiln/internal/testutil"
)

// Raw writes a sparse raw disk of size bytes at path, with data in a
// few places chosen to catch off-by-ones: the start, runs crossing 1 MiB
// and 2 MiB boundaries, a single byte, an explicitly written zero MiB, the
// middle, and the last bytes (a partial sector when size is odd). seed
// varies the bytes. It returns the number of data bytes written.
func Raw(t testing.TB, path string, size int64, seed uint64) int64 {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 0x6b696c6e))
	var data int64
	Sparse(t, path, size, func(put func(int64, []byte)) {
		text := func(off, n int64) {
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
			put(off, b)
			data += n
		}
		text(0, 300<<10)
		text(4<<20-5000, 12000)
		text(33<<20+513, 1)
		put(10<<20, make([]byte, 1<<20)) // explicit zeros
		text(size/2, 3<<20)
		text(size/2+7<<20+100, 1<<20)
		text(size-3000, 3000)
	})
	return data
}

// Sparse writes a sparse file of size bytes at path, with fill's data:
// put(off, b) writes b at off.
func Sparse(t testing.TB, path string, size int64, fill func(put func(off int64, b []byte))) {
	t.Helper()
	f, err := os.Create(path)
	require.NoError(t, err)
	defer f.Close()
	require.NoError(t, f.Truncate(size))
	fill(func(off int64, b []byte) {
		_, err := f.WriteAt(b, off)
		require.NoError(t, err)
	})
	require.NoError(t, f.Close())
}

// Qemu runs qemu-img and returns its output and exit code.
func Qemu(t testing.TB, args ...string) (string, int) {
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

func QemuOK(t testing.TB, args ...string) string {
	t.Helper()
	out, rc := Qemu(t, args...)
	require.Equal(t, 0, rc, "qemu-img %v:\n%s", args, out)
	return out
}

type QemuInfo struct {
	Format      string `json:"format"`
	VirtualSize int64  `json:"virtual-size"`
	ActualSize  int64  `json:"actual-size"`
}

func Info(t testing.TB, format, path string) QemuInfo {
	t.Helper()
	var info QemuInfo
	out := QemuOK(t, "info", "-f", format, "--output=json", path)
	require.NoError(t, json.Unmarshal([]byte(out), &info), out)
	return info
}

// Allocated is the space the file takes on disk.
func Allocated(t testing.TB, path string) int64 {
	t.Helper()
	var st syscall.Stat_t
	require.NoError(t, syscall.Stat(path, &st))
	return st.Blocks * 512
}

func FileSize(t testing.TB, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	require.NoError(t, err)
	return fi.Size()
}

// WriteFile runs a writer into a new file at path, and returns path.
func WriteFile(t testing.TB, path string, src image.Source, o image.Options,
	write func(context.Context, *os.File, image.Source, image.Options) error) string {
	t.Helper()
	f, err := os.Create(path)
	require.NoError(t, err)
	require.NoError(t, write(context.Background(), f, src, o))
	require.NoError(t, f.Close())
	return path
}

// OpenRaw opens a raw file as a image.Source, closed with the test.
func OpenRaw(t testing.TB, path string) *image.RawFile {
	t.Helper()
	r, err := image.OpenRaw(path)
	require.NoError(t, err)
	t.Cleanup(func() { r.Close() })
	return r
}

// SameDisk compares two virtual disks byte for byte in 4 MiB chunks: got
// must hold want's bytes followed by nothing but zeros.
func SameDisk(t testing.TB, want, got image.Source) {
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
		if !image.IsZero(b[wn:n]) {
			t.Fatalf("bytes past the source's end, in [%d, %d), are not zero", off+wn, off+n)
		}
	}
	// Reading at the end reports EOF.
	n, err := got.ReadAt(make([]byte, 10), got.Size()-5)
	require.Equal(t, 5, n)
	require.ErrorIs(t, err, io.EOF)
}

// ReadsAs checks that open reads path as a disk of the given format,
// subformat and size that holds src's bytes (SameDisk) within its extents
// (ExtentsCover).
func ReadsAs(t testing.TB, open func(string) (image.Image, error), path, format, sub string, size int64, src image.Source) {
	t.Helper()
	img, err := open(path)
	require.NoError(t, err)
	defer img.Close()
	require.Equal(t, format, img.Format())
	require.Equal(t, sub, img.Subformat())
	require.Equal(t, size, img.Size())
	SameDisk(t, src, img)
	ExtentsCover(t, src, img)
}

// ExtentsCover checks that the image's extents cover every non-zero
// byte of want (a raw source).
func ExtentsCover(t testing.TB, want image.Source, img image.Image) {
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
	require.NoError(t, image.ForEachBlock(want, 64<<10, func(off int64, data []byte) error {
		for i := 0; i < len(data); i += 512 {
			j := min(i+512, len(data))
			if !image.IsZero(data[i:j]) && !covered(off+int64(i), int64(j-i)) {
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

// Sizes are the source sizes the qemu tests use: one not a multiple
// of 1 MiB (not even of a sector), one exact.
var Sizes = []struct {
	Name string
	Size int64
}{
	{"1GiB+12345", 1<<30 + 12345},
	{"64MiB", 64 << 20},
}

// Source makes a test raw disk in dir.
func Source(t testing.TB, dir string, size int64) (string, *image.RawFile) {
	t.Helper()
	p := filepath.Join(dir, "src.raw")
	Raw(t, p, size, uint64(size))
	return p, OpenRaw(t, p)
}

// InfoMap is qemu-img info's JSON for path, as a map.
func InfoMap(t testing.TB, path string) map[string]any {
	t.Helper()
	out, err := exec.Command("qemu-img", "info", "--output=json", path).Output()
	require.NoError(t, err)
	var info map[string]any
	require.NoError(t, json.Unmarshal(out, &info))
	return info
}

// GPTDisk writes a real raw disk of size bytes in dir: a GPT (sgdisk) with
// an EFI system partition and an ext4 root partition made with mke2fs -d
// from a tree of text, random and binary files. It returns its path.
func GPTDisk(t testing.TB, dir string, size int64) string {
	t.Helper()
	tree := filepath.Join(dir, "tree")
	require.NoError(t, os.MkdirAll(filepath.Join(tree, "etc"), 0o755))
	rng := rand.New(rand.NewPCG(7, 11))
	random := make([]byte, 3<<20+777)
	for i := range random {
		random[i] = byte(rng.Uint32())
	}
	require.NoError(t, os.WriteFile(filepath.Join(tree, "etc", "text"), testutil.Text(5<<20), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(tree, "random"), random, 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(tree, "binaries"), testutil.Binaries(t, 4<<20), 0o644))
	p := filepath.Join(dir, "gpt.raw")
	require.NoError(t, os.WriteFile(p, nil, 0o644))
	require.NoError(t, os.Truncate(p, size))
	testutil.Run(t, "sgdisk", "-n", "1:2048:+16M", "-t", "1:ef00", "-n", "2:0:0", "-t", "2:8304", p)
	const rootOff = (2048 + 16<<11) * 512
	testutil.Run(t, "mke2fs", "-q", "-F", "-t", "ext4", "-d", tree, "-E", "offset="+strconv.Itoa(rootOff), p, strconv.FormatInt((size-rootOff-1<<20)>>10, 10)+"k")
	return p
}

// Mutate copies src to a new file in dir and applies fn to its bytes.
func Mutate(t testing.TB, src, name string, fn func(b []byte) []byte) string {
	t.Helper()
	b, err := os.ReadFile(src)
	require.NoError(t, err)
	p := filepath.Join(filepath.Dir(src), name)
	require.NoError(t, os.WriteFile(p, fn(b), 0o644))
	return p
}

// Problems runs a checker on path: it must succeed and report, for each
// of wants, a problem that mentions it; without wants, no problem at all.
// It returns the problems.
func Problems(t testing.TB, check func(string) ([]string, error), path string, wants ...string) []string {
	t.Helper()
	problems, err := check(path)
	require.NoError(t, err)
	if len(wants) == 0 {
		require.Empty(t, problems)
	}
	for _, w := range wants {
		if !slices.ContainsFunc(problems, func(p string) bool { return strings.Contains(p, w) }) {
			t.Fatalf("no problem mentions %q in %q", w, problems)
		}
	}
	return problems
}

// FaultySource is a Source whose Hook runs before every read, with the
// read's number (from 1), and may fail it.
type FaultySource struct {
	image.Source
	Hook  func(read int64) error
	reads atomic.Int64
}

func (s *FaultySource) ReadAt(p []byte, off int64) (int, error) {
	if err := s.Hook(s.reads.Add(1)); err != nil {
		return 0, err
	}
	return s.Source.ReadAt(p, off)
}

// Reads is the number of reads so far.
func (s *FaultySource) Reads() int64 { return s.reads.Load() }

// RawWith writes a sparse raw disk of size bytes at path holding data at
// the given offsets.
func RawWith(t testing.TB, path string, size int64, data map[int64][]byte) {
	t.Helper()
	Sparse(t, path, size, func(put func(int64, []byte)) {
		for off, b := range data {
			put(off, b)
		}
	})
}
