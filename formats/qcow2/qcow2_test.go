package qcow2

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kiln-build/kiln/formats/image"
	"github.com/kiln-build/kiln/formats/internal/imagetest"
	"github.com/kiln-build/kiln/internal/testutil"
)

// qcow2TestSize is the virtual size of the test disk: 1 GiB and a partial
// last cluster of 1.5 KiB.
const qcow2TestSize = 1<<30 + 3*512

// qcow2Text returns n bytes of text-like data (compresses about 3:1).
func qcow2Text(rnd *rand.Rand, n int) []byte {
	words := strings.Fields("kiln image disk cluster the of a and to qcow2 deflate sector table " +
		"refcount boot partition ext4 grub linux root data header offset write read block")
	var b bytes.Buffer
	for b.Len() < n {
		b.WriteString(words[rnd.IntN(len(words))])
		if rnd.IntN(12) == 0 {
			b.WriteByte('\n')
		} else {
			b.WriteByte(' ')
		}
	}
	return b.Bytes()[:n]
}

func qcow2Random(rnd *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rnd.Uint32())
	}
	return b
}

// qcow2TestSource writes the sparse raw test disk to dir/src.raw: random and
// text data at unaligned offsets, data across a cluster boundary, explicit
// zeros, clusters alternating between compressible and not, and data up to
// the very end of a partial last cluster.
func qcow2TestSource(t testing.TB, dir string) string {
	t.Helper()
	p := filepath.Join(dir, "src.raw")
	rnd := rand.New(rand.NewPCG(1, 2))
	const cl = 64 << 10
	imagetest.Sparse(t, p, qcow2TestSize, func(put func(int64, []byte)) {
		put(0, qcow2Random(rnd, 446))                    // a boot sector
		put(1<<20+1234, qcow2Random(rnd, 300<<10))       // incompressible, unaligned
		put(64<<20+7, qcow2Text(rnd, 4<<20))             // compresses well
		put(200<<20+cl-4, []byte("boundary"))            // across a cluster boundary
		put(300<<20, bytes.Repeat([]byte("ab\x00c"), 5)) // tiny
		low := make([]byte, 2<<20)                       // low entropy
		for i := range low {
			low[i] = "aaaabbc\x00"[rnd.IntN(8)]
		}
		put(310<<20+100, low)
		put(400<<20, make([]byte, 3<<20)) // explicit zeros: a data extent of zeros
		put(700<<20, qcow2Text(rnd, 1<<20))
		for i := range int64(40) { // alternating: raw clusters among compressed ones
			if i%3 == 0 {
				put(800<<20+i*cl, qcow2Random(rnd, cl))
			} else {
				put(800<<20+i*cl, qcow2Text(rnd, cl))
			}
		}
		put(qcow2TestSize-1000, qcow2Text(rnd, 1000))
	})
	return p
}

// qcow2WriteFile writes src to path with Write (or qcow2Write for a
// cluster size other than 64 KiB).
func qcow2WriteFile(t testing.TB, path string, src image.Source, o image.Options, cbits uint) {
	t.Helper()
	f, err := os.Create(path)
	require.NoError(t, err)
	if cbits == qcow2ClusterBits {
		err = Write(context.Background(), f, src, o)
	} else {
		err = qcow2Write(context.Background(), f, src, o, cbits)
	}
	require.NoError(t, err)
	require.NoError(t, f.Close())
}

const qcow2HashChunk = 1 << 20

// qcow2Hashes hashes src's whole virtual disk in 1 MiB chunks through
// ReadAt; an all-zero chunk hashes as all zeros.
func qcow2Hashes(t testing.TB, src image.Source) [][32]byte {
	t.Helper()
	n := (src.Size() + qcow2HashChunk - 1) / qcow2HashChunk
	out := make([][32]byte, n)
	buf := make([]byte, qcow2HashChunk)
	for i := range n {
		off := i * qcow2HashChunk
		m := min(qcow2HashChunk, src.Size()-off)
		k, err := src.ReadAt(buf[:m], off)
		if int64(k) != m || err != nil && !errors.Is(err, io.EOF) {
			t.Fatalf("ReadAt(%d, %d) = %d, %v", m, off, k, err)
		}
		if !image.IsZero(buf[:m]) {
			out[i] = sha256.Sum256(buf[:m])
		}
	}
	return out
}

// qcow2SameDisk checks that img reads as the disk hashed in want, through
// ReadAt and through its Extents (what converters visit).
func qcow2SameDisk(t testing.TB, want [][32]byte, img image.Image) {
	t.Helper()
	qcow2EqualHashes(t, "ReadAt", want, qcow2Hashes(t, img))
	got := make([][32]byte, len(want))
	require.NoError(t, image.ForEachBlock(img, qcow2HashChunk, func(off int64, data []byte) error {
		got[off/qcow2HashChunk] = sha256.Sum256(data)
		return nil
	}))
	qcow2EqualHashes(t, "Extents", want, got)
}

func qcow2EqualHashes(t testing.TB, what string, want, got [][32]byte) {
	t.Helper()
	require.Len(t, got, len(want), what)
	for i := range want {
		if want[i] != got[i] {
			t.Fatalf("%s: MiB %d differs", what, i)
		}
	}
}

// qcow2QemuValid checks p with qemu-img: check clean, compare identical to
// raw, info with format qcow2, compat 1.1 and the exact virtual size.
func qcow2QemuValid(t testing.TB, p, raw string, size int64) {
	t.Helper()
	out := testutil.Run(t, "qemu-img", "check", "-f", "qcow2", p)
	require.Contains(t, out, "No errors were found", out)
	testutil.Run(t, "qemu-img", "compare", "-f", "raw", "-F", "qcow2", raw, p)
	var info struct {
		Format         string `json:"format"`
		VirtualSize    int64  `json:"virtual-size"`
		FormatSpecific struct {
			Data struct {
				Compat string `json:"compat"`
			} `json:"data"`
		} `json:"format-specific"`
	}
	require.NoError(t, json.Unmarshal([]byte(testutil.Run(t, "qemu-img", "info", "--output=json", p)), &info))
	require.Equal(t, "qcow2", info.Format)
	require.Equal(t, "1.1", info.FormatSpecific.Data.Compat)
	require.Equal(t, size, info.VirtualSize)
}

// TestQCOW2ReadsQemuImages reads files made by qemu-img: v3 and v2 (compat
// 0.10), plain and compressed.
func TestQCOW2ReadsQemuImages(t *testing.T) {
	testutil.Require(t, "qemu-img")
	dir := t.TempDir()
	raw := qcow2TestSource(t, dir)
	want := qcow2Hashes(t, imagetest.OpenRaw(t, raw))
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"v3", nil},
		{"v3-compressed", []string{"-c"}},
		{"v2", []string{"-o", "compat=0.10"}},
		{"v2-compressed", []string{"-c", "-o", "compat=0.10"}},
		{"v3-4k-clusters", []string{"-c", "-o", "cluster_size=4096"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(dir, tc.name+".qcow2")
			args := append(append([]string{"convert", "-f", "raw", "-O", "qcow2"}, tc.args...), raw, p)
			testutil.Run(t, "qemu-img", args...)
			img, err := Open(p)
			require.NoError(t, err)
			defer img.Close()
			require.Equal(t, "qcow2", img.Format())
			require.Equal(t, "", img.Subformat())
			require.Equal(t, int64(qcow2TestSize), img.Size())
			qcow2SameDisk(t, want, img)
		})
	}
}

// TestQCOW2ReadsZeroClusters reads v3 zero-flag clusters written by qemu-io,
// over allocated and unallocated clusters.
func TestQCOW2ReadsZeroClusters(t *testing.T) {
	testutil.Require(t, "qemu-img", "qemu-io")
	p := filepath.Join(t.TempDir(), "z.qcow2")
	testutil.Run(t, "qemu-img", "create", "-f", "qcow2", p, "4M")
	testutil.Run(t, "qemu-io", "-f", "qcow2",
		"-c", "write -P 0xab 0 256k",
		"-c", "write -z 64k 64k", // over data: zero flag, cluster kept
		"-c", "write -z 1M 128k", // over nothing: zero flag
		"-c", "write -P 0xcd 3M 4k", p)
	want := make([]byte, 4<<20)
	copy(want[:256<<10], bytes.Repeat([]byte{0xab}, 256<<10))
	clear(want[64<<10 : 128<<10])
	copy(want[3<<20:], bytes.Repeat([]byte{0xcd}, 4<<10))

	img, err := Open(p)
	require.NoError(t, err)
	defer img.Close()
	got := make([]byte, len(want))
	n, err := img.ReadAt(got, 0)
	require.NoError(t, err)
	require.Equal(t, len(want), n)
	require.True(t, bytes.Equal(want, got))

	q := img.(*qcow2Image)
	var zeroFlags int
	for g := range int64(4 << 20 >> 16) {
		tab, err := q.l2Table(q.l1[0])
		require.NoError(t, err)
		if e := binary.BigEndian.Uint64(tab[8*g:]); e&qcow2ZeroFlag != 0 {
			zeroFlags++
		}
	}
	require.Equal(t, 3, zeroFlags, "the test should exercise zero-flag clusters")
	exts, err := img.Extents()
	require.NoError(t, err)
	require.Equal(t, "[{0 65536} {131072 131072} {3145728 65536}]", fmt.Sprint(exts))
}

// TestQCOW2Deterministic: the same input gives the same bytes, whatever the
// number of compression workers.
func TestQCOW2Deterministic(t *testing.T) {
	dir := t.TempDir()
	src := imagetest.OpenRaw(t, qcow2TestSource(t, dir))
	sum := func(name string, o image.Options) [32]byte {
		p := filepath.Join(dir, name)
		qcow2WriteFile(t, p, src, o, qcow2ClusterBits)
		b, err := os.ReadFile(p)
		require.NoError(t, err)
		return sha256.Sum256(b)
	}
	require.Equal(t, sum("p1", image.Options{}), sum("p2", image.Options{}))
	c1 := sum("c1", image.Options{Compress: true, Workers: 1})
	require.Equal(t, c1, sum("c4", image.Options{Compress: true, Workers: 4}))
	require.Equal(t, c1, sum("c4b", image.Options{Compress: true, Workers: 4}))
	require.Equal(t, c1, sum("c0", image.Options{Compress: true}))
}

// qcow2SmallSource writes a raw disk of n clusters of 1<<cbits bytes, each
// randomly empty, zero, text, random, or partly filled.
func qcow2SmallSource(t testing.TB, p string, seed uint64, n int, cbits uint) *image.RawFile {
	t.Helper()
	rnd := rand.New(rand.NewPCG(seed, 7))
	cl := 1 << cbits
	size := int64(n*cl - rnd.IntN(cl/512)*512)
	imagetest.Sparse(t, p, size, func(put func(int64, []byte)) {
		for i := range n {
			var b []byte
			switch rnd.IntN(6) {
			case 0:
				continue
			case 1:
				b = make([]byte, cl)
			case 2:
				b = qcow2Random(rnd, cl)
			case 3:
				b = qcow2Random(rnd, 1+rnd.IntN(cl))
			default:
				b = qcow2Text(rnd, 1+rnd.IntN(cl))
			}
			off := int64(i * cl)
			if off+int64(len(b)) > size {
				b = b[:size-off]
			}
			put(off, b)
		}
	})
	return imagetest.OpenRaw(t, p)
}

// TestQCOW2ClusterSizes checks the writer's layout (compressed clusters
// packed across host clusters, the moved tail, raw clusters among
// compressed ones, refcounts) on many small disks with small clusters, where
// qemu-img check sees every corner.
func TestQCOW2ClusterSizes(t *testing.T) {
	testutil.Require(t, "qemu-img")
	dir := t.TempDir()
	for _, cbits := range []uint{9, 12, 21} {
		for seed := range uint64(12) {
			n := 40
			if cbits == 21 {
				n = 5
				if seed > 2 {
					break
				}
			}
			raw := filepath.Join(dir, "s.raw")
			src := qcow2SmallSource(t, raw, seed, n, cbits)
			want := qcow2Hashes(t, src)
			for _, o := range []image.Options{{}, {Compress: true, Workers: 3}} {
				t.Run(fmt.Sprintf("cbits %d seed %d compress %v", cbits, seed, o.Compress), func(t *testing.T) {
					p := filepath.Join(dir, "s.qcow2")
					qcow2WriteFile(t, p, src, o, cbits)
					testutil.Run(t, "qemu-img", "check", "-f", "qcow2", p)
					testutil.Run(t, "qemu-img", "compare", "-f", "raw", "-F", "qcow2", raw, p)
					img, err := Open(p)
					require.NoError(t, err)
					qcow2SameDisk(t, want, img)
					img.Close()
				})
			}
		}
	}
}

// TestQCOW2EmptyDisks: a zero-size disk and a disk of explicit zeros.
func TestQCOW2EmptyDisks(t *testing.T) {
	dir := t.TempDir()
	for _, size := range []int64{0, 8 << 20} {
		raw := filepath.Join(dir, "e.raw")
		require.NoError(t, os.WriteFile(raw, make([]byte, size), 0o644))
		src := imagetest.OpenRaw(t, raw)
		for _, o := range []image.Options{{}, {Compress: true}} {
			p := filepath.Join(dir, "e.qcow2")
			qcow2WriteFile(t, p, src, o, qcow2ClusterBits)
			// header, L1 (if any), refcount table and block
			require.Equal(t, int64(3+min(size, 1))<<16, imagetest.FileSize(t, p))
			img, err := Open(p)
			require.NoError(t, err)
			exts, err := img.Extents()
			require.NoError(t, err)
			require.Empty(t, exts)
			qcow2SameDisk(t, qcow2Hashes(t, src), img)
			img.Close()
			if testutil.Have(t, "qemu-img") {
				qcow2QemuValid(t, p, raw, size)
			}
		}
	}
}

// qcow2SmallImage returns a small valid image (512-byte clusters) made by
// our writer: the seeds of the malformed-file tests and of the fuzzer.
func qcow2SmallImage(t testing.TB, dir string, seed uint64, compress bool) []byte {
	t.Helper()
	src := qcow2SmallSource(t, filepath.Join(dir, "small.raw"), seed, 8, 9)
	p := filepath.Join(dir, "small.qcow2")
	qcow2WriteFile(t, p, src, image.Options{Compress: compress, Workers: 1}, 9)
	b, err := os.ReadFile(p)
	require.NoError(t, err)
	return b
}

// qcow2Exercise opens b and reads it all (bounded), as kiln convert would.
// Every error must be a *image.FormatError or image.ErrUnsupported.
func qcow2Exercise(b []byte) error {
	q, err := qcow2Open(bytes.NewReader(b), int64(len(b)), nil)
	if err != nil {
		return err
	}
	defer q.Close()
	return imagetest.Exercise(q, 64<<20)
}

// TestQCOW2Malformed: damaged or unsupported files give a *image.FormatError or
// image.ErrUnsupported, never a panic.
func TestQCOW2Malformed(t *testing.T) {
	dir := t.TempDir()
	good := qcow2SmallImage(t, dir, 3, true)
	require.NoError(t, qcow2Exercise(good))
	be := binary.BigEndian
	l1 := int64(be.Uint64(good[40:]))
	edit := func(f func(b []byte)) []byte {
		b := bytes.Clone(good)
		f(b)
		return b
	}
	unsupported := map[string][]byte{
		"backing file": edit(func(b []byte) { be.PutUint64(b[8:], 1024) }),
		"encryption":   edit(func(b []byte) { be.PutUint32(b[32:], 2) }),
		"data file":    edit(func(b []byte) { b[79] |= qcow2FeatDataFile }),
		"extended L2":  edit(func(b []byte) { b[79] |= qcow2FeatExtendedL2 }),
		"unknown bit":  edit(func(b []byte) { b[72] |= 0x80 }),
		"zstd":         edit(func(b []byte) { b[79] |= qcow2FeatCompType; b[104] = 1 }),
	}
	for name, b := range unsupported {
		require.ErrorIs(t, qcow2Exercise(b), image.ErrUnsupported, name)
	}
	malformed := map[string][]byte{
		"empty":             nil,
		"truncated header":  good[:80],
		"truncated":         good[:len(good)/2],
		"magic":             edit(func(b []byte) { b[0] = 'X' }),
		"version":           edit(func(b []byte) { be.PutUint32(b[4:], 4) }),
		"cluster bits 8":    edit(func(b []byte) { be.PutUint32(b[20:], 8) }),
		"cluster bits 22":   edit(func(b []byte) { be.PutUint32(b[20:], 22) }),
		"huge size":         edit(func(b []byte) { be.PutUint64(b[24:], 1<<62) }),
		"huge L1":           edit(func(b []byte) { be.PutUint32(b[36:], 1<<31) }),
		"L1 outside":        edit(func(b []byte) { be.PutUint64(b[40:], 1<<40) }),
		"L1 unaligned":      edit(func(b []byte) { be.PutUint64(b[40:], uint64(l1+8)) }),
		"L2 outside":        edit(func(b []byte) { be.PutUint64(b[l1:], 1<<50) }),
		"header length":     edit(func(b []byte) { be.PutUint32(b[100:], 50) }),
		"corrupt":           edit(func(b []byte) { b[79] |= qcow2FeatCorrupt }),
		"zlib with the bit": edit(func(b []byte) { b[79] |= qcow2FeatCompType }),
		"refcount order":    edit(func(b []byte) { be.PutUint32(b[96:], 7) }),
	}
	l2 := int64(be.Uint64(good[l1:]) & qcow2OffsetMask)
	for i := range int64(8) { // damage every kind of L2 entry
		malformed[fmt.Sprint("L2 entry ", i)] = edit(func(b []byte) {
			e := be.Uint64(b[l2+8*i:])
			if e&qcow2Compressed != 0 {
				be.PutUint64(b[l2+8*i:], e^0x1ff) // moves the compressed data
			} else {
				be.PutUint64(b[l2+8*i:], e|0x0ff0000000000000)
			}
		})
	}
	malformed["L2 shared"] = edit(func(b []byte) { copy(b[l1+8:], b[l1:l1+8]) })
	be.PutUint64(malformed["L2 shared"][24:], 64<<10) // two L1 entries in use
	be.PutUint32(malformed["L2 shared"][36:], 2)
	for name, b := range malformed {
		err := qcow2Exercise(b)
		var fe *image.FormatError
		if !errors.As(err, &fe) && !strings.HasPrefix(name, "L2 entry") {
			t.Errorf("%s: got %v, want a *FormatError", name, err)
		}
		require.True(t, err == nil || imagetest.Malformed(err), "%s: %v", name, err)
	}
}

func FuzzOpenQCOW2(f *testing.F) {
	dir := f.TempDir()
	be := binary.BigEndian
	for seed := range uint64(3) {
		for _, compress := range []bool{false, true} {
			b := qcow2SmallImage(f, dir, seed, compress)
			f.Add(b)
			v2 := bytes.Clone(b) // the same image as version 2
			be.PutUint32(v2[4:], 2)
			f.Add(v2)
			f.Add(b[:len(b)*2/3])
			l1 := be.Uint64(b[40:])
			l2 := be.Uint64(b[l1:]) & qcow2OffsetMask
			z := bytes.Clone(b) // zero flags
			for i := range uint64(4) {
				be.PutUint64(z[l2+8*i:], be.Uint64(z[l2+8*i:])|qcow2ZeroFlag)
			}
			f.Add(z)
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if err := qcow2Exercise(b); err != nil && !imagetest.Malformed(err) {
			t.Fatalf("unexpected error type %T: %v", err, err)
		}
	})
}
