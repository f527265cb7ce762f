package fat32

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestWriteAtOffset writes the sample tree at 1 MiB of a larger sparse
// image and judges it with fsck.vfat (on the extracted region) and mtools
// (in place, through @@offset).
func TestWriteAtOffset(t *testing.T) {
	requireTools(t)
	const off, size = 1 * MiB, 64 * MiB
	s := sampleTree(t, t.TempDir())
	img := newImage(t, "disk.img", off+size+MiB)
	// Bytes right before and after the region must survive.
	f, err := os.OpenFile(img, os.O_RDWR, 0)
	require.NoError(t, err)
	_, err = f.WriteAt([]byte("before"), off-6)
	require.NoError(t, err)
	_, err = f.WriteAt([]byte("after"), off+size)
	require.NoError(t, err)
	require.NoError(t, f.Close())

	opts := Options{VolumeID: 0x1234ABCD, Label: "esp", ModTime: testTime, HiddenSectors: off / 512}
	writeFS(t, s.b, img, off, size, opts)

	raw, err := os.ReadFile(img)
	require.NoError(t, err)
	require.Equal(t, "before", string(raw[off-6:off]))
	require.Equal(t, "after", string(raw[off+size:off+size+5]))

	part := extract(t, img, off, size)
	g, err := newGeometry(size)
	require.NoError(t, err)
	require.Equal(t, strconv.Itoa(int(g.clusters)), fsck(t, part))

	f, err = os.Open(img)
	require.NoError(t, err)
	defer f.Close()
	checkStructure(t, f, off, size)
	checkContent(t, s, img, off)

	info := mustRun(t, "minfo", "-i", mtoolsImage(img, off), "::")
	require.Contains(t, info, "serial number: 1234ABCD")
	require.Contains(t, info, `disk label="ESP        "`)
	require.Contains(t, info, `disk type="FAT32   "`)
	require.Contains(t, info, "hidden sectors: 2048")
	require.Contains(t, info, "rootCluster=2")
	require.Contains(t, info, "backup boot sector=6")
	require.Contains(t, info, "infoSector location=1")
	// The label entry in the root directory is what mdir shows.
	listing := mustRun(t, "mdir", "-i", mtoolsImage(img, off), "::")
	require.Contains(t, listing, "Volume in drive : is ESP")
	require.Contains(t, listing, "Volume Serial Number is 1234-ABCD")
	// Short names: unique ~N tails, long names kept.
	require.Regexp(t, `(?m)^INITRD~1 0-A +70000 .* initrd\.img-6\.1\.0-a$`, listing)
	require.Regexp(t, `(?m)^INITRD~1 0-B +70001 .* initrd\.img-6\.1\.0-b$`, listing)
	require.Regexp(t, `(?m)^INITRD~1 0-3 +1000 .* initrd\.img-6\.1\.0-37-cloud-amd64$`, listing)
	require.Regexp(t, `(?m)^INITRD~2 0-3 +1001 .* initrd\.img-6\.1\.0-38-cloud-amd64$`, listing)
	require.Regexp(t, `(?m)^UPPER +TXT +5 2024-05-17 +13:37 *$`, listing) // no long name
	require.Regexp(t, `(?m)^EMPTY +TXT +0 .* empty\.txt$`, listing)
}

// TestSizes formats a range of sizes (some of which go-diskfs got wrong)
// with the sample tree and has fsck.vfat and mtools judge each.
func TestSizes(t *testing.T) {
	requireTools(t)
	sizes := []int64{
		MinSize, 33 * MiB, 64 * MiB, 100*MiB + 1000, 129 * MiB, 194 * MiB, 256 * MiB,
		259 * MiB, 260 * MiB, 260*MiB + 512, 300 * MiB, 1 << 30,
	}
	if !testing.Short() {
		sizes = append(sizes, 8<<30+4096, 33<<30)
	}
	hostDir := t.TempDir()
	for _, size := range sizes {
		t.Run(strconv.FormatInt(size, 10), func(t *testing.T) {
			s := sampleTree(t, hostDir)
			img := newImage(t, "fs.img", size)
			writeFS(t, s.b, img, 0, size, Options{VolumeID: uint32(size), Label: "ESP", ModTime: testTime})
			g, err := newGeometry(size)
			require.NoError(t, err)
			require.Equal(t, strconv.Itoa(int(g.clusters)), fsck(t, img))
			f, err := os.Open(img)
			require.NoError(t, err)
			defer f.Close()
			checkStructure(t, f, 0, size)
			checkContent(t, s, img, 0)
			info := mustRun(t, "minfo", "-i", img, "::")
			require.Contains(t, info, fmt.Sprintf("cluster size: %d sectors", g.sectorsPerCluster))
		})
	}
}

func TestTooSmall(t *testing.T) {
	img := newImage(t, "small.img", 64*MiB)
	f, err := os.OpenFile(img, os.O_RDWR, 0)
	require.NoError(t, err)
	defer f.Close()
	for _, size := range []int64{0, 1, 32 * MiB, MinSize - 512, MinSize - 1} {
		err := New().Write(f, 0, size, Options{})
		require.Error(t, err, "size %d", size)
		require.Contains(t, err.Error(), strconv.Itoa(MinSize), "the error names the minimum size")
	}
	require.NoError(t, New().Write(f, 0, MinSize, Options{}))
}

// TestDeterministic: the same input gives the same bytes, whatever the
// order of the Add calls; another VolumeID gives other bytes.
func TestDeterministic(t *testing.T) {
	const size = 64 * MiB
	hostDir := t.TempDir()
	opts := Options{VolumeID: 42, Label: "ESP", ModTime: testTime}
	a := newImage(t, "a.img", size)
	writeFS(t, sampleTree(t, hostDir).b, a, 0, size, opts)

	// The same tree, added in reverse order.
	s := sampleTree(t, t.TempDir())
	r := New()
	var paths []string
	for p := range s.files {
		paths = append(paths, p)
	}
	for i := len(paths) - 1; i >= 0; i-- {
		require.NoError(t, r.AddBytes(paths[i], s.files[paths[i]]))
	}
	require.NoError(t, r.AddDir("empty-dir"))
	b := newImage(t, "b.img", size)
	writeFS(t, r, b, 0, size, opts)
	require.Equal(t, fileSHA(t, a), fileSHA(t, b))

	opts.VolumeID = 43
	c := newImage(t, "c.img", size)
	writeFS(t, r, c, 0, size, opts)
	require.NotEqual(t, fileSHA(t, a), fileSHA(t, c))
}

// TestOverwritesGarbage writes over random bytes: whatever the filesystem
// uses (reserved area, FATs, directory tails, file slack) must be written,
// so fsck and mtools still see exactly the tree.
func TestOverwritesGarbage(t *testing.T) {
	requireTools(t)
	const size = 40 * MiB
	img := newImage(t, "garbage.img", 0)
	require.NoError(t, os.WriteFile(img, randomBytes(99, size), 0o644))
	s := sampleTree(t, t.TempDir())
	opts := Options{VolumeID: 7, Label: "GARBAGE", ModTime: testTime}
	writeFS(t, s.b, img, 0, size, opts)
	fsck(t, img)
	f, err := os.Open(img)
	require.NoError(t, err)
	defer f.Close()
	checkStructure(t, f, 0, size)
	checkContent(t, s, img, 0)

	// Everything up to the last allocated cluster equals a write into a
	// fresh (zeroed) file: no byte in use was left unwritten.
	fresh := newImage(t, "fresh.img", size)
	writeFS(t, s.b, fresh, 0, size, opts)
	g, err := newGeometry(size)
	require.NoError(t, err)
	got, err := os.ReadFile(img)
	require.NoError(t, err)
	want, err := os.ReadFile(fresh)
	require.NoError(t, err)
	last := binary.LittleEndian.Uint32(want[512+492:])
	end := g.clusterOffset(last + 1)
	require.Greater(t, end, int64(5*MiB))
	require.True(t, bytes.Equal(want[:end], got[:end]), "the used part of the filesystem depends on the old content")
}

// TestSparse: a 256 MiB filesystem holding about 1 MiB written into a
// fresh file allocates only its metadata and that 1 MiB. The file is
// created empty: Write extends it.
func TestSparse(t *testing.T) {
	const size = 256 * MiB
	b := New()
	require.NoError(t, b.AddBytes("EFI/BOOT/BOOTX64.EFI", randomBytes(1, 1*MiB)))
	require.NoError(t, b.AddBytes("loader/loader.conf", []byte("timeout 0\n")))
	img := newImage(t, "sparse.img", 0)
	writeFS(t, b, img, 0, size, Options{})
	fi, err := os.Stat(img)
	require.NoError(t, err)
	require.Equal(t, int64(size), fi.Size())
	allocated := fi.Sys().(*syscall.Stat_t).Blocks * 512
	// Two 2 MiB FATs, 16 KiB reserved, the file and two directories.
	t.Logf("allocated %d bytes of %d", allocated, size)
	require.Less(t, allocated, int64(8*MiB))
}

// TestFull fills the filesystem to the last cluster.
func TestFull(t *testing.T) {
	requireTools(t)
	const size = MinSize
	g, err := newGeometry(size)
	require.NoError(t, err)
	// Root: label + 2 entries (LFN + short) = 1 cluster; the file takes
	// the rest.
	fill := (int64(g.clusters) - 1) * g.clusterSize()
	b := New()
	require.NoError(t, b.AddBytes("fill.bin", randomBytes(5, int(fill))))
	img := newImage(t, "full.img", size)
	writeFS(t, b, img, 0, size, Options{Label: "FULL"})
	fsck(t, img)
	f, err := os.Open(img)
	require.NoError(t, err)
	defer f.Close()
	checkStructure(t, f, 0, size)
	info := mustRun(t, "minfo", "-i", img, "::")
	require.Regexp(t, regexp.MustCompile(`free clusters=0\b`), info)

	b = New()
	require.NoError(t, b.AddBytes("fill.bin", randomBytes(5, int(fill)+1)))
	err = b.Write(f, 0, size, Options{})
	require.ErrorContains(t, err, "does not fit")
}
