package formats

// Hostile inputs, one fixture each, made here (or by qemu-img, xz, zstd):
// every reader refuses backing files, extent paths outside the input's
// directory, virtual sizes beyond image.MaxVirtualSize, tables that point
// past the end of the file, and loops, with a clear error, and allocates
// little doing so; a FIFO, a directory or /dev/zero as input is an error at
// once, never a hang.

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kiln-build/kiln/formats/image"
	"github.com/kiln-build/kiln/formats/ova"
	"github.com/kiln-build/kiln/formats/qcow2"
	"github.com/kiln-build/kiln/formats/vhdx"
	"github.com/kiln-build/kiln/internal/sparse"
	"github.com/kiln-build/kiln/internal/testutil"
)

// hostileCase is one hostile input: make writes it into dir and returns
// its path; read is what a caller does with it (default: open it as a
// disk and read its extents and first sector, as kiln convert would).
type hostileCase struct {
	name     string
	make     func(t *testing.T, dir string) string
	read     func(path string) error
	want     string // in the error
	maxAlloc uint64 // heap bytes the attempt may allocate
	unsupp   bool   // the error wraps image.ErrUnsupported
}

// openAndRead opens path as a disk, lists its extents and reads a sector.
func openAndRead(path string) error {
	img, err := Open(path)
	if err != nil {
		return err
	}
	defer img.Close()
	if _, err := img.Extents(); err != nil {
		return err
	}
	_, err = img.ReadAt(make([]byte, 512), 0)
	return err
}

func decompress(path string) error {
	return Decompress(context.Background(), path, path+".out")
}

// run runs a case: the error must come within a few seconds, say want,
// and cost at most maxAlloc.
func (c hostileCase) run(t *testing.T) {
	t.Helper()
	path := c.make(t, t.TempDir())
	read := c.read
	if read == nil {
		read = openAndRead
	}
	var err error
	done := make(chan struct{})
	alloc := testutil.Allocated(func() {
		go func() { defer close(done); err = read(path) }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			t.Fatalf("%s: no answer in 20 s (a hang)", c.name)
		}
	})
	require.Error(t, err, c.name)
	require.Contains(t, err.Error(), c.want, c.name)
	if c.unsupp {
		require.ErrorIs(t, err, image.ErrUnsupported, c.name)
	}
	limit := c.maxAlloc
	if limit == 0 {
		limit = 4 << 20
	}
	require.LessOrEqual(t, alloc, limit, "%s allocated %d bytes", c.name, alloc)
	t.Logf("%-40s %7d KiB  %s", c.name, alloc>>10, err)
}

func qemuImg(t *testing.T, dir string, args ...string) {
	t.Helper()
	cmd := exec.Command("qemu-img", args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, string(out))
}

// patch rewrites bytes of a file at off.
func patch(t *testing.T, path string, off int64, b []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	require.NoError(t, err)
	_, err = f.WriteAt(b, off)
	require.NoError(t, err)
	require.NoError(t, f.Close())
}

func be64(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }
func le64(v uint64) []byte { return binary.LittleEndian.AppendUint64(nil, v) }

// qcow2Fixture makes a 1 GiB qcow2 with data in its first cluster and at
// 600 MiB (two L2 tables) with qemu-img and qemu-io.
func qcow2Fixture(t *testing.T, dir string) string {
	testutil.Require(t, "qemu-img", "qemu-io")
	p := filepath.Join(dir, "disk.qcow2")
	qemuImg(t, dir, "create", "-q", "-f", "qcow2", p, "1G")
	testutil.Run(t, "qemu-io", "-f", "qcow2", "-c", "write -P 7 0 64k", "-c", "write -P 9 600M 64k", p)
	return p
}

func readFile(t *testing.T, p string) []byte {
	b, err := os.ReadFile(p)
	require.NoError(t, err)
	return b
}

// vpcChecksum is a VHD footer's or dynamic header's checksum: the one's
// complement of the sum of its bytes, the checksum field excluded.
func vpcChecksum(b []byte, at int) []byte {
	var sum uint32
	for i, c := range b {
		if i < at || i >= at+4 {
			sum += uint32(c)
		}
	}
	return binary.BigEndian.AppendUint32(nil, ^sum)
}

// vhdDynamicFixture makes a 64 MiB dynamic VHD with qemu-img, then applies
// edit to both footer copies and the dynamic header (offset 512) and
// fixes their checksums.
func vhdDynamicFixture(t *testing.T, dir string, edit func(footer, dyn []byte)) string {
	testutil.Require(t, "qemu-img")
	p := filepath.Join(dir, "disk.vhd")
	qemuImg(t, dir, "create", "-q", "-f", "vpc", "-o", "subformat=dynamic", p, "64M")
	b := readFile(t, p)
	tail := len(b) - 512
	footer, dyn := b[tail:], b[512:1536]
	edit(footer, dyn)
	copy(footer[64:], vpcChecksum(footer, 64))
	copy(b[:512], footer)
	copy(dyn[36:], vpcChecksum(dyn, 36))
	require.NoError(t, os.WriteFile(p, b, 0o644))
	return p
}

// vhdxGUID writes a GUID the way VHDX stores it.
func vhdxGUID(s string) []byte {
	s = strings.ReplaceAll(s, "-", "")
	var b [16]byte
	for i := range 16 {
		var v byte
		for _, c := range s[2*i : 2*i+2] {
			v <<= 4
			switch {
			case c >= '0' && c <= '9':
				v |= byte(c - '0')
			default:
				v |= byte(c-'A') + 10
			}
		}
		b[i] = v
	}
	b[0], b[1], b[2], b[3] = b[3], b[2], b[1], b[0]
	b[4], b[5] = b[5], b[4]
	b[6], b[7] = b[7], b[6]
	return b[:]
}

const (
	vhdxMetaRegion = "8B7CA206-4790-4B9A-B8FE-575F050F886E"
	vhdxBATRegion  = "2DC27766-F623-4200-9D64-115E9BFD4A08"
	vhdxFileParams = "CAA16737-FA36-4D43-B3B6-33F0AA44E76B"
	vhdxDiskSize   = "2FA54224-CD1B-4876-B211-5DBED83BF4B8"
)

// vhdxFixture makes a 64 MiB VHDX with qemu-img and returns it, its bytes,
// and the offsets of its region tables.
func vhdxFixture(t *testing.T, dir string) (string, []byte) {
	testutil.Require(t, "qemu-img")
	p := filepath.Join(dir, "disk.vhdx")
	qemuImg(t, dir, "create", "-q", "-f", "vhdx", p, "64M")
	return p, readFile(t, p)
}

// vhdxRegion finds a region's entry (file offset field) in both region
// tables.
func vhdxRegion(b []byte, guid string) (entries []int) {
	g := vhdxGUID(guid)
	for _, table := range []int{192 << 10, 256 << 10} {
		n := int(binary.LittleEndian.Uint32(b[table+8:]))
		for i := range n {
			e := table + 16 + 32*i
			if bytes.Equal(b[e:e+16], g) {
				entries = append(entries, e)
			}
		}
	}
	return entries
}

// vhdxItem finds a metadata item's data offset.
func vhdxItem(t *testing.T, b []byte, guid string) int {
	meta := int(binary.LittleEndian.Uint64(b[vhdxRegion(b, vhdxMetaRegion)[0]+16:]))
	n := int(binary.LittleEndian.Uint16(b[meta+10:]))
	g := vhdxGUID(guid)
	for i := range n {
		e := meta + 32 + 32*i
		if bytes.Equal(b[e:e+16], g) {
			return meta + int(binary.LittleEndian.Uint32(b[e+16:]))
		}
	}
	t.Fatalf("no metadata item %s", guid)
	return 0
}

// vhdxSealRegions recomputes both region tables' CRC-32C.
func vhdxSealRegions(b []byte) {
	for _, table := range []int{192 << 10, 256 << 10} {
		r := b[table : table+64<<10]
		binary.LittleEndian.PutUint32(r[4:], 0)
		binary.LittleEndian.PutUint32(r[4:], crc32.Checksum(r, crc32.MakeTable(crc32.Castagnoli)))
	}
}

func write(t *testing.T, dir, name string, b []byte) string {
	p := filepath.Join(dir, name)
	require.NoError(t, os.WriteFile(p, b, 0o644))
	return p
}

// ovaFixture writes a tar with the given members (name, content).
func ovaFixture(t *testing.T, dir string, members ...[2]string) string {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, m := range members {
		require.NoError(t, tw.WriteHeader(&tar.Header{Name: m[0], Mode: 0o644, Size: int64(len(m[1])), Format: tar.FormatUSTAR}))
		_, err := tw.Write([]byte(m[1]))
		require.NoError(t, err)
	}
	require.NoError(t, tw.Close())
	return write(t, dir, "vm.ova", buf.Bytes())
}

func ovf(href string) string {
	return `<?xml version="1.0"?><Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1">
<References><File ovf:href="` + href + `" ovf:id="file1" ovf:size="4"/></References>
<DiskSection><Disk ovf:diskId="vmdisk1" ovf:fileRef="file1" ovf:capacity="1048576" ovf:format="http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized"/></DiskSection>
<VirtualSystem ovf:id="vm"/></Envelope>`
}

// ovaProblems runs the OVA check and turns its problems into an error.
func ovaProblems(path string) error {
	problems, err := ova.Check(path)
	if err != nil {
		return err
	}
	if len(problems) == 0 {
		return nil
	}
	return errors.New(strings.Join(problems, "; "))
}

func TestHostileInputs(t *testing.T) {
	cases := []hostileCase{
		// qcow2
		{name: "qcow2 backing file", want: `backing file "base.qcow2": Kiln reads standalone images only`, unsupp: true,
			make: func(t *testing.T, dir string) string {
				testutil.Require(t, "qemu-img")
				qemuImg(t, dir, "create", "-q", "-f", "qcow2", "base.qcow2", "1M")
				qemuImg(t, dir, "create", "-q", "-f", "qcow2", "-b", "base.qcow2", "-F", "qcow2", "over.qcow2")
				return filepath.Join(dir, "over.qcow2")
			}},
		{name: "qcow2 backing chain loop (a on b on a)", want: `backing file "b.qcow2"`, unsupp: true,
			make: func(t *testing.T, dir string) string {
				testutil.Require(t, "qemu-img")
				qemuImg(t, dir, "create", "-q", "-f", "qcow2", "-u", "-b", "b.qcow2", "-F", "qcow2", "a.qcow2", "1M")
				qemuImg(t, dir, "create", "-q", "-f", "qcow2", "-u", "-b", "a.qcow2", "-F", "qcow2", "b.qcow2", "1M")
				return filepath.Join(dir, "a.qcow2")
			}},
		{name: "qcow2 virtual size 1 EiB", want: "qcow2: virtual size of 1152921504606846976 bytes is beyond Kiln's limit of 70368744177664 bytes (64 TiB)",
			make: func(t *testing.T, dir string) string {
				p := qcow2Fixture(t, dir)
				patch(t, p, 24, be64(1<<60))
				return p
			}},
		{name: "qcow2 L1 table past the end", want: "qcow2: L1 table at 1099511627776 outside the file",
			make: func(t *testing.T, dir string) string {
				p := qcow2Fixture(t, dir)
				patch(t, p, 40, be64(1<<40))
				return p
			}},
		{name: "qcow2 L2 table loop (two L1 entries)", want: "used twice",
			make: func(t *testing.T, dir string) string {
				p := qcow2Fixture(t, dir)
				b := readFile(t, p)
				l1 := binary.BigEndian.Uint64(b[40:])
				copy(b[l1+8:], b[l1:l1+8])
				return write(t, dir, "loop.qcow2", b)
			}},
		// vmdk
		{name: "vmdk descriptor: extent path with ..", want: `vmdk: extent file "../../etc/passwd" lies outside the directory of the descriptor`,
			make: func(t *testing.T, dir string) string {
				return write(t, dir, "flat.vmdk", []byte("# Disk DescriptorFile\nversion=1\nCID=fffffffe\nparentCID=ffffffff\ncreateType=\"monolithicFlat\"\nRW 2048 FLAT \"../../etc/passwd\" 0\n"))
			}},
		{name: "vmdk descriptor: absolute extent path", want: `vmdk: extent file "/dev/sda" lies outside`,
			make: func(t *testing.T, dir string) string {
				return write(t, dir, "flat.vmdk", []byte("# Disk DescriptorFile\nversion=1\ncreateType=\"monolithicFlat\"\nRW 2048 FLAT \"/dev/sda\" 0\n"))
			}},
		{name: "vmdk descriptor loop (its extent is itself)", want: `descriptor-only VMDK (createType "twoGbMaxExtentSparse")`, unsupp: true,
			make: func(t *testing.T, dir string) string {
				return write(t, dir, "self.vmdk", []byte("# Disk DescriptorFile\nversion=1\ncreateType=\"twoGbMaxExtentSparse\"\nRW 2048 SPARSE \"self.vmdk\"\n"))
			}},
		{name: "vmdk delta disk (backing file)", want: `on a backing file of "base.vmdk"`, unsupp: true,
			make: func(t *testing.T, dir string) string {
				testutil.Require(t, "qemu-img")
				qemuImg(t, dir, "create", "-q", "-f", "vmdk", "base.vmdk", "1M")
				qemuImg(t, dir, "create", "-q", "-f", "vmdk", "-b", "base.vmdk", "-F", "vmdk", "delta.vmdk")
				return filepath.Join(dir, "delta.vmdk")
			}},
		{name: "vmdk capacity 1 EiB", want: "vmdk: capacity of 2251799813685248 sectors is beyond Kiln's limit",
			make: func(t *testing.T, dir string) string {
				testutil.Require(t, "qemu-img")
				qemuImg(t, dir, "create", "-q", "-f", "vmdk", "disk.vmdk", "64M")
				p := filepath.Join(dir, "disk.vmdk")
				patch(t, p, 12, le64(1<<51))
				return p
			}},
		{name: "vmdk grain directory past the end", want: "is beyond the end of the file",
			make: func(t *testing.T, dir string) string {
				testutil.Require(t, "qemu-img")
				qemuImg(t, dir, "create", "-q", "-f", "vmdk", "disk.vmdk", "64M")
				p := filepath.Join(dir, "disk.vmdk")
				patch(t, p, 56, le64(1<<30)) // gdOffset, in sectors
				return p
			}},
		// vhd
		{name: "vhd differencing disk (backing file)", want: `vhd: differencing disk on a parent "base.vhd"`, unsupp: true,
			make: func(t *testing.T, dir string) string {
				return vhdDynamicFixture(t, dir, func(footer, dyn []byte) {
					binary.BigEndian.PutUint32(footer[60:], 4)
					name := []byte{0, 'b', 0, 'a', 0, 's', 0, 'e', 0, '.', 0, 'v', 0, 'h', 0, 'd'}
					copy(dyn[64:], name)
				})
			}},
		{name: "vhd virtual size 1 PiB", want: "vhd: virtual size of 1125899906842624 bytes is beyond Kiln's limit",
			make: func(t *testing.T, dir string) string {
				return vhdDynamicFixture(t, dir, func(footer, _ []byte) {
					copy(footer[40:], be64(1<<50)) // original size
					copy(footer[48:], be64(1<<50)) // current size
				})
			}},
		{name: "vhd BAT past the end", want: "outside the file",
			make: func(t *testing.T, dir string) string {
				return vhdDynamicFixture(t, dir, func(_, dyn []byte) { copy(dyn[16:], be64(1<<40)) })
			}},
		// vhdx
		{name: "vhdx differencing disk (has a parent)", want: "vhdx: differencing disk (has a parent)", unsupp: true,
			make: func(t *testing.T, dir string) string {
				_, b := vhdxFixture(t, dir)
				fp := vhdxItem(t, b, vhdxFileParams)
				b[fp+4] |= 2 // HasParent
				return write(t, dir, "diff.vhdx", b)
			}},
		{name: "vhdx virtual size 1 PiB", want: "at most 64 TiB",
			make: func(t *testing.T, dir string) string {
				_, b := vhdxFixture(t, dir)
				copy(b[vhdxItem(t, b, vhdxDiskSize):], le64(1<<50))
				return write(t, dir, "big.vhdx", b)
			}},
		{name: "vhdx BAT past the end", want: "outside the file",
			make: func(t *testing.T, dir string) string {
				_, b := vhdxFixture(t, dir)
				for _, e := range vhdxRegion(b, vhdxBATRegion) {
					copy(b[e+16:], le64(1<<40))
				}
				vhdxSealRegions(b)
				return write(t, dir, "bat.vhdx", b)
			}},
		// raw
		{name: "raw file of 100 TiB", want: "beyond Kiln's limit",
			make: func(t *testing.T, dir string) string {
				p := filepath.Join("/dev/shm", "kiln-hostile-100T.raw") // tmpfs: ext4 stops at 16 TiB
				f, err := os.Create(p)
				if err != nil {
					t.Skip("no /dev/shm")
				}
				t.Cleanup(func() { os.Remove(p) })
				require.NoError(t, f.Truncate(100<<40))
				require.NoError(t, f.Close())
				return p
			}},
		// compressed raw
		{name: "zstd window of 2 GiB", want: "zstd: the frame's window of 2147483648 bytes is beyond Kiln's limit", read: decompress,
			make: func(t *testing.T, dir string) string {
				// magic, descriptor (window follows), window descriptor exponent 21 (2^31), an empty raw last block
				return write(t, dir, "big-window.raw.zst", []byte{0x28, 0xb5, 0x2f, 0xfd, 0x00, 21 << 3, 0x01, 0x00, 0x00})
			}},
		{name: "zstd frame claiming 1 PiB", want: "zstd: the frame says it holds 1125899906842624 bytes", read: decompress,
			make: func(t *testing.T, dir string) string {
				// single segment, 8-byte content size
				b := append([]byte{0x28, 0xb5, 0x2f, 0xfd, 0xe0}, le64(1<<50)...)
				return write(t, dir, "claims.raw.zst", append(b, 0x01, 0x00, 0x00))
			}},
		{name: "zstd truncated stream", want: "decompressing", read: decompress,
			make: func(t *testing.T, dir string) string {
				testutil.Require(t, "zstd")
				p := write(t, dir, "data.raw", bytes.Repeat([]byte("kiln hostile "), 1<<16))
				testutil.Run(t, "zstd", "-q", "-f", p, "-o", p+".zst")
				b := readFile(t, p+".zst")
				return write(t, dir, "cut.raw.zst", b[:len(b)/2])
			}},
		{name: "xz dictionary of 192 MiB", want: "xz: stream 1 from the end: block 1: an LZMA2 dictionary of 201326592 bytes is beyond Kiln's limit", read: decompress,
			make: func(t *testing.T, dir string) string {
				testutil.Require(t, "xz")
				p := write(t, dir, "small.raw", []byte("a small disk"))
				testutil.Run(t, "xz", "-k", "-f", "--lzma2=dict=192MiB", p)
				return p + ".xz"
			}},
		{name: "xz truncated (no stream footer)", want: "not a well-formed xz file (no stream footer)", read: decompress,
			make: func(t *testing.T, dir string) string {
				testutil.Require(t, "xz")
				p := write(t, dir, "small.raw", bytes.Repeat([]byte("kiln "), 1000))
				testutil.Run(t, "xz", "-k", "-f", p)
				b := readFile(t, p+".xz")
				return write(t, dir, "cut.raw.xz", b[:len(b)-5])
			}},
		// ova
		{name: "ova href outside the archive", want: `File "../disk.vmdk" is a path outside the archive's directory`, read: ovaProblems,
			make: func(t *testing.T, dir string) string {
				return ovaFixture(t, dir, [2]string{"vm.ovf", ovf("../disk.vmdk")}, [2]string{"disk.vmdk", "KDMV"})
			}},
		{name: "ova member path outside the archive", want: `member "../../etc/cron.d/x" has a path that leaves the archive's directory`, read: ovaProblems,
			make: func(t *testing.T, dir string) string {
				return ovaFixture(t, dir, [2]string{"vm.ovf", ovf("disk.vmdk")}, [2]string{"../../etc/cron.d/x", "KDMV"})
			}},
		{name: "ova member past the end", want: "is truncated", read: ovaProblems,
			make: func(t *testing.T, dir string) string {
				p := ovaFixture(t, dir, [2]string{"vm.ovf", ovf("disk.vmdk")}, [2]string{"disk.vmdk", strings.Repeat("x", 4096)})
				require.NoError(t, os.Truncate(p, 2048))
				return p
			}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { c.run(t) })
	}
}

// The limits hold while decompressing too: a stream that says nothing of
// its size stops at decompressLimit (lowered here to 1 MiB, from 64 TiB),
// and so does an xz file whose index adds up to more.
func TestDecompressStopsAtTheLimit(t *testing.T) {
	testutil.Require(t, "zstd", "xz")
	old := decompressLimit
	decompressLimit = 1 << 20
	defer func() { decompressLimit = old }()
	dir := t.TempDir()
	p := write(t, dir, "zeros.raw", make([]byte, 4<<20))
	testutil.Run(t, "zstd", "-q", "-f", "--no-content-size", p, "-o", p+".zst")
	testutil.Run(t, "xz", "-k", "-f", p)
	for ext, want := range map[string]string{
		".zst": "holds more than 1048576 bytes, Kiln's limit for a disk (64 TiB)",
		".xz":  "the index says the stream holds more than 1048576 bytes",
	} {
		var err error
		alloc := testutil.Allocated(func() { err = decompress(p + ext) })
		require.ErrorContains(t, err, want)
		require.Less(t, alloc, uint64(16<<20), ext)
	}
	decompressLimit = old
	for _, ext := range []string{".xz", ".zst"} {
		require.NoFileExists(t, p+ext+".out", "a failed decompression leaves no output")
		require.NoError(t, decompress(p+ext), "the same file under the real limit")
	}
}

// Inputs that are not files: a FIFO (no writer: opening it for reading
// would wait forever), a directory and /dev/zero (endless) get an error at
// once from every entry point that takes a path.
func TestNotAFileIsRefusedAtOnce(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "disk.fifo")
	require.NoError(t, syscall.Mkfifo(fifo, 0o644))
	inputs := map[string]string{fifo: "is a named pipe (FIFO), not an image file", dir: "is a directory, not an image file", "/dev/zero": "is a character device, not an image file"}
	entries := map[string]func(string) error{
		"Detect":     func(p string) error { _, err := Detect(p); return err },
		"Open":       openAndRead,
		"qcow2.Open": func(p string) error { _, err := qcow2.Open(p); return err },
		"vhdx.Check": func(p string) error { _, err := vhdx.Check(p); return err },
		"ova.Check":  func(p string) error { _, err := ova.Check(p); return err },
		"OpenRaw":    func(p string) error { _, err := image.OpenRaw(p); return err },
		"Decompress": decompress,
		"Verify":     func(p string) error { _, err := Verify(p, "qemu"); return err },
		"SHA256":     func(p string) error { _, err := sparse.SHA256(p); return err },
	}
	for _, f := range All() {
		if f.Open != nil {
			entries[f.Name+".Open"] = func(p string) error { _, err := f.Open(p); return err }
		}
	}
	for in, want := range inputs {
		for name, fn := range entries {
			c := hostileCase{name: name + " of " + in, want: want, read: fn, make: func(*testing.T, string) string { return in }}
			c.run(t)
		}
	}
}
