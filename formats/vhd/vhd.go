// Package vhd writes and reads VHD (Microsoft's "Virtual Hard Disk Image
// Format Specification", version 1.0, 2006), fixed and dynamic, and checks
// a VHD against Azure's rules (CheckAzure). All fields are big-endian.
//
// It deliberately does not write or read differencing disks (a parent) and
// does not pick the subformat a platform wants (package formats does).
//
//	fixed:   [disk data, virtual size bytes][footer 512]
//	dynamic: [footer copy 512][dynamic header 1024][BAT, padded to 512]
//	         [sector bitmap 512][block 2 MiB] ... [footer 512]
//
// Choices made by the writer:
//
//   - A fixed VHD's virtual size is the source size rounded up to a multiple
//     of 1 MiB (Azure requires it; the added tail reads as zeros). A dynamic
//     VHD's is rounded up to a whole sector only (the format's unit), so it
//     is the source size for any disk of whole sectors; dynamic VHDs are not
//     for Azure, which takes fixed ones only.
//   - Creator application "qem2". QEMU before 10.0 sizes a VHD by its CHS
//     geometry, which rounds most sizes down, unless the creator application
//     is one it knows to store the exact size in the current-size field:
//     "win " (Hyper-V), "d2v ", "CTXS", "tap\0" or "qem2" (qemu-img with
//     force_size, the tool Azure's documentation uses to make VHDs). QEMU 10
//     trusts the current size for every application except "vpc " and
//     "qemu". "qem2" is the one whose meaning is exactly "the current size is
//     the disk size", and Hyper-V and Azure read the current size whatever
//     the application. The creator version is 0x00010000.
//   - Timestamp 0 (2000-01-01 00:00:00 UTC) and a unique ID derived from
//     the contents: a SHA-256 over the virtual size and the offset and
//     CRC-32C of every non-zero block (blocks.ContentHash), so the output
//     is a function of the input only, and different disks get different
//     IDs.
//   - Dynamic disks use the spec's 2 MiB blocks; a block is allocated only
//     if it holds a non-zero byte, its sector bitmap is all ones (every
//     sector present, as qemu and Hyper-V write them), and the zero 4 KiB
//     pieces inside it stay holes in the file.
//
// The reader takes the size from the current-size field (as Hyper-V does)
// and honours the sector bitmaps of dynamic disks (a clear bit reads as
// zeros). Differencing disks are image.ErrUnsupported.
package vhd

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"math/bits"
	"os"
	"unicode/utf16"

	"github.com/kiln-build/kiln/formats/image"
	"github.com/kiln-build/kiln/formats/internal/blocks"
	"github.com/kiln-build/kiln/internal/sparse"
)

const (
	vhdFooterSize    = 512
	vhdDynHeaderSize = 1024
	vhdSector        = 512
	vhdBlockSize     = 2 << 20 // dynamic block size written
	vhdTypeFixed     = 2
	vhdTypeDynamic   = 3
	vhdTypeDiff      = 4
	vhdNoBlock       = 0xFFFFFFFF
	vhdNoOffset      = 0xFFFFFFFFFFFFFFFF
	vhdVersion       = 0x00010000
	// vhdMaxDynamicSize is the largest dynamic VHD the spec allows (2040 GiB;
	// qemu refuses larger ones).
	vhdMaxDynamicSize = 2040 << 30
	// vhdMaxBlockSize bounds the block size the reader accepts (the spec
	// uses 2 MiB; some tools 512 KiB).
	vhdMaxBlockSize = 256 << 20

	vhdCreatorApp     = "qem2"
	vhdCreatorVersion = 0x00010000
	vhdCreatorOS      = "Wi2k"
)

// Offsets of the footer fields.
const (
	vhdFtCookie     = 0
	vhdFtFeatures   = 8
	vhdFtVersion    = 12
	vhdFtDataOffset = 16
	vhdFtTimestamp  = 24
	vhdFtCreatorApp = 28
	vhdFtCreatorVer = 32
	vhdFtCreatorOS  = 36
	vhdFtOrigSize   = 40
	vhdFtCurSize    = 48
	vhdFtGeometry   = 56
	vhdFtDiskType   = 60
	vhdFtChecksum   = 64
	vhdFtUniqueID   = 68
	vhdFtSavedState = 84
)

// Offsets of the dynamic disk header fields.
const (
	vhdDhCookie     = 0
	vhdDhDataOffset = 8
	vhdDhTableOff   = 16
	vhdDhVersion    = 24
	vhdDhMaxEntries = 28
	vhdDhBlockSize  = 32
	vhdDhChecksum   = 36
)

// vhdChecksum is the spec's checksum: the one's complement of the sum of all
// bytes of b except the 4-byte checksum field at skip.
func vhdChecksum(b []byte, skip int) uint32 {
	var sum uint32
	for i, c := range b {
		if i >= skip && i < skip+4 {
			continue
		}
		sum += uint32(c)
	}
	return ^sum
}

// vhdGeometry is the spec's CHS algorithm (appendix "CHS Calculation").
func vhdGeometry(size int64) (cyl uint16, heads, spt uint8) {
	total := size / vhdSector
	if total > 65535*16*255 {
		total = 65535 * 16 * 255
	}
	var sectors, h, cth int64
	if total >= 65535*16*63 {
		sectors, h = 255, 16
		cth = total / sectors
	} else {
		sectors = 17
		cth = total / sectors
		h = (cth + 1023) / 1024
		if h < 4 {
			h = 4
		}
		if cth >= h*1024 || h > 16 {
			sectors, h = 31, 16
			cth = total / sectors
		}
		if cth >= h*1024 {
			sectors, h = 63, 16
			cth = total / sectors
		}
	}
	return uint16(cth / h), uint8(h), uint8(sectors)
}

// vhdMakeFooter builds a footer for a disk of the given type and size.
func vhdMakeFooter(diskType uint32, size int64, id [16]byte) []byte {
	b := make([]byte, vhdFooterSize)
	copy(b[vhdFtCookie:], "conectix")
	binary.BigEndian.PutUint32(b[vhdFtFeatures:], 2) // "reserved", must be set
	binary.BigEndian.PutUint32(b[vhdFtVersion:], vhdVersion)
	dataOffset := uint64(vhdNoOffset)
	if diskType != vhdTypeFixed {
		dataOffset = vhdFooterSize // the dynamic header follows the footer copy
	}
	binary.BigEndian.PutUint64(b[vhdFtDataOffset:], dataOffset)
	binary.BigEndian.PutUint32(b[vhdFtTimestamp:], 0)
	copy(b[vhdFtCreatorApp:], vhdCreatorApp)
	binary.BigEndian.PutUint32(b[vhdFtCreatorVer:], vhdCreatorVersion)
	copy(b[vhdFtCreatorOS:], vhdCreatorOS)
	binary.BigEndian.PutUint64(b[vhdFtOrigSize:], uint64(size))
	binary.BigEndian.PutUint64(b[vhdFtCurSize:], uint64(size))
	c, h, s := vhdGeometry(size)
	binary.BigEndian.PutUint16(b[vhdFtGeometry:], c)
	b[vhdFtGeometry+2] = h
	b[vhdFtGeometry+3] = s
	binary.BigEndian.PutUint32(b[vhdFtDiskType:], diskType)
	copy(b[vhdFtUniqueID:], id[:])
	b[vhdFtSavedState] = 0
	binary.BigEndian.PutUint32(b[vhdFtChecksum:], vhdChecksum(b, vhdFtChecksum))
	return b
}

// vhdMakeDynHeader builds the dynamic disk header.
func vhdMakeDynHeader(tableOff int64, entries uint32, blockSize uint32) []byte {
	b := make([]byte, vhdDynHeaderSize)
	copy(b[vhdDhCookie:], "cxsparse")
	binary.BigEndian.PutUint64(b[vhdDhDataOffset:], vhdNoOffset)
	binary.BigEndian.PutUint64(b[vhdDhTableOff:], uint64(tableOff))
	binary.BigEndian.PutUint32(b[vhdDhVersion:], vhdVersion)
	binary.BigEndian.PutUint32(b[vhdDhMaxEntries:], entries)
	binary.BigEndian.PutUint32(b[vhdDhBlockSize:], blockSize)
	binary.BigEndian.PutUint32(b[vhdDhChecksum:], vhdChecksum(b, vhdDhChecksum))
	return b
}

// vhdSizeFor is the virtual size a VHD writer gives a source of n bytes.
func vhdSizeFor(n int64, diskType uint32) int64 {
	if diskType == vhdTypeFixed {
		return blocks.RoundUp(n, blocks.MiB)
	}
	return blocks.RoundUp(n, vhdSector)
}

// VirtualSize is the virtual size of a VHD of the given subformat written
// from a source of n bytes.
func VirtualSize(n int64, subformat string) int64 {
	if subformat == "dynamic" {
		return vhdSizeFor(n, vhdTypeDynamic)
	}
	return vhdSizeFor(n, vhdTypeFixed)
}

// Write writes src as a VHD: o.Subformat "fixed" (default) or "dynamic".
//
// A fixed VHD's virtual size is src.Size() rounded up to a multiple of 1 MiB
// (Azure's rule; the extra bytes read as zeros), a dynamic VHD's to a whole
// 512-byte sector. A fixed VHD is the raw disk followed
// by the 512-byte footer, written sparsely: only the non-zero 4 KiB pieces of
// the data are written, the rest are holes. A dynamic VHD allocates only the
// 2 MiB blocks that hold data. The output depends only on the source's
// contents. dst is truncated first; it is not synced.
func Write(ctx context.Context, dst *os.File, src image.Source, o image.Options) error {
	size := src.Size()
	if size <= 0 {
		return fmt.Errorf("vhd: source is empty")
	}
	switch o.Subformat {
	case "", "fixed":
		return vhdWriteFixed(ctx, dst, src)
	case "dynamic":
		return vhdWriteDynamic(ctx, dst, src)
	default:
		return fmt.Errorf("vhd: unknown subformat %q (want \"fixed\" or \"dynamic\")", o.Subformat)
	}
}

func vhdWriteFixed(ctx context.Context, dst *os.File, src image.Source) error {
	vsize := vhdSizeFor(src.Size(), vhdTypeFixed)
	if err := dst.Truncate(0); err != nil {
		return err
	}
	h := blocks.NewContentHash("vhd fixed", vsize)
	err := blocks.EachBlockAsync(ctx, src, blocks.MiB, func(off int64, data []byte) error {
		h.Block(off, data)
		return blocks.WriteRuns(dst, data, off)
	})
	if err != nil {
		return err
	}
	if err := dst.Truncate(vsize); err != nil {
		return err
	}
	_, err = dst.WriteAt(vhdMakeFooter(vhdTypeFixed, vsize, h.GUID("vhd unique id")), vsize)
	return err
}

func vhdWriteDynamic(ctx context.Context, dst *os.File, src image.Source) error {
	vsize := vhdSizeFor(src.Size(), vhdTypeDynamic)
	if vsize > vhdMaxDynamicSize {
		return fmt.Errorf("vhd: a dynamic VHD holds at most 2040 GiB, the source has %d bytes", src.Size())
	}
	nBlocks := (vsize + vhdBlockSize - 1) / vhdBlockSize
	const tableOff = vhdFooterSize + vhdDynHeaderSize
	tableLen := blocks.RoundUp(nBlocks*4, vhdSector)
	bat := make([]uint32, nBlocks)
	for i := range bat {
		bat[i] = vhdNoBlock
	}
	if err := dst.Truncate(0); err != nil {
		return err
	}
	bitmap := make([]byte, vhdSector) // 4096 sectors per block: 512 bytes
	for i := range bitmap {
		bitmap[i] = 0xFF
	}
	next := int64(tableOff) + tableLen // where the next block goes
	h := blocks.NewContentHash("vhd dynamic", vsize)
	err := blocks.EachBlockAsync(ctx, src, vhdBlockSize, func(off int64, data []byte) error {
		h.Block(off, data)
		bat[off/vhdBlockSize] = uint32(next / vhdSector)
		if _, err := dst.WriteAt(bitmap, next); err != nil {
			return err
		}
		if err := blocks.WriteRuns(dst, data, next+vhdSector); err != nil {
			return err
		}
		next += vhdSector + vhdBlockSize
		return nil
	})
	if err != nil {
		return err
	}
	table := make([]byte, tableLen)
	for i := range table {
		table[i] = 0xFF
	}
	for i, e := range bat {
		binary.BigEndian.PutUint32(table[4*i:], e)
	}
	if _, err := dst.WriteAt(table, tableOff); err != nil {
		return err
	}
	if _, err := dst.WriteAt(vhdMakeDynHeader(tableOff, uint32(nBlocks), vhdBlockSize), vhdFooterSize); err != nil {
		return err
	}
	footer := vhdMakeFooter(vhdTypeDynamic, vsize, h.GUID("vhd unique id"))
	if _, err := dst.WriteAt(footer, 0); err != nil {
		return err
	}
	if err := dst.Truncate(next); err != nil {
		return err
	}
	_, err = dst.WriteAt(footer, next)
	return err
}

// vhdFooterInfo is a parsed footer.
type vhdFooterInfo struct {
	cookieOK   bool
	checksumOK bool
	dataOffset uint64
	creatorApp string
	curSize    uint64
	diskType   uint32
}

func vhdParseFooter(b []byte) vhdFooterInfo {
	return vhdFooterInfo{
		cookieOK:   string(b[vhdFtCookie:vhdFtCookie+8]) == "conectix",
		checksumOK: binary.BigEndian.Uint32(b[vhdFtChecksum:]) == vhdChecksum(b[:vhdFooterSize], vhdFtChecksum),
		dataOffset: binary.BigEndian.Uint64(b[vhdFtDataOffset:]),
		creatorApp: string(b[vhdFtCreatorApp : vhdFtCreatorApp+4]),
		curSize:    binary.BigEndian.Uint64(b[vhdFtCurSize:]),
		diskType:   binary.BigEndian.Uint32(b[vhdFtDiskType:]),
	}
}

// vhdImage is an open VHD.
type vhdImage struct {
	f        *os.File
	fileSize int64
	size     int64
	dynamic  bool

	// dynamic disks
	blockSize  int64
	bitmapSize int64
	bat        *blocks.Table
}

func vhdErr(format string, a ...any) error { return image.Errorf("vhd", format, a...) }

// Open opens a fixed or dynamic VHD. A differencing VHD is image.ErrUnsupported;
// a malformed file is a *image.FormatError.
func Open(path string) (image.Image, error) {
	return image.Open(path, vhdOpen)
}

// vhdReadFooter finds the footer of f: the one at the end, or, if that one
// is damaged, the copy at the start of a dynamic or differencing disk.
func vhdReadFooter(f io.ReaderAt, fileSize int64) (vhdFooterInfo, error) {
	if fileSize < vhdFooterSize {
		return vhdFooterInfo{}, vhdErr("file of %d bytes is too small for a VHD footer", fileSize)
	}
	buf := make([]byte, vhdFooterSize)
	if err := image.ReadFull(f, buf, fileSize-vhdFooterSize, "vhd", "footer"); err != nil {
		return vhdFooterInfo{}, err
	}
	tail := vhdParseFooter(buf)
	if tail.cookieOK && tail.checksumOK {
		return tail, nil
	}
	if err := image.ReadFull(f, buf, 0, "vhd", "footer copy"); err != nil {
		return vhdFooterInfo{}, err
	}
	head := vhdParseFooter(buf)
	if head.cookieOK && head.checksumOK && (head.diskType == vhdTypeDynamic || head.diskType == vhdTypeDiff) {
		return head, nil
	}
	if tail.cookieOK {
		return vhdFooterInfo{}, vhdErr("footer checksum mismatch")
	}
	return vhdFooterInfo{}, vhdErr("no VHD footer (cookie \"conectix\") at the end of the file")
}

func vhdOpen(f *os.File, fileSize int64) (*vhdImage, error) {
	img := &vhdImage{f: f, fileSize: fileSize}
	ft, err := vhdReadFooter(f, img.fileSize)
	if err != nil {
		return nil, err
	}
	if err := image.CheckVirtualSize("vhd", ft.curSize); err != nil {
		return nil, err
	}
	switch ft.diskType {
	case vhdTypeFixed:
		if ft.curSize > uint64(img.fileSize-vhdFooterSize) {
			return nil, vhdErr("fixed disk of %d bytes in a file of %d bytes (truncated?)", ft.curSize, img.fileSize)
		}
		img.size = int64(ft.curSize)
		return img, nil
	case vhdTypeDynamic:
		img.dynamic = true
	case vhdTypeDiff:
		return nil, fmt.Errorf("vhd: differencing disk on a parent%s: %w: Kiln reads standalone images only and never opens the file an image names", vhdParentName(f, ft.dataOffset, fileSize), image.ErrUnsupported)
	default:
		return nil, vhdErr("unknown disk type %d", ft.diskType)
	}

	if ft.dataOffset > uint64(img.fileSize) || int64(ft.dataOffset) > img.fileSize-vhdDynHeaderSize {
		return nil, vhdErr("dynamic header offset %d outside the file", ft.dataOffset)
	}
	dh := make([]byte, vhdDynHeaderSize)
	if err := image.ReadFull(f, dh, int64(ft.dataOffset), "vhd", "dynamic header"); err != nil {
		return nil, err
	}
	if string(dh[vhdDhCookie:vhdDhCookie+8]) != "cxsparse" {
		return nil, vhdErr("no dynamic header (cookie \"cxsparse\") at offset %d", ft.dataOffset)
	}
	if binary.BigEndian.Uint32(dh[vhdDhChecksum:]) != vhdChecksum(dh, vhdDhChecksum) {
		return nil, vhdErr("dynamic header checksum mismatch")
	}
	if v := binary.BigEndian.Uint32(dh[vhdDhVersion:]); v>>16 != 1 {
		return nil, vhdErr("dynamic header version %#x", v)
	}
	bs := binary.BigEndian.Uint32(dh[vhdDhBlockSize:])
	if bits.OnesCount32(bs) != 1 || bs < vhdSector || bs > vhdMaxBlockSize {
		return nil, vhdErr("block size %d is not a power of two between 512 and %d", bs, vhdMaxBlockSize)
	}
	img.blockSize = int64(bs)
	img.bitmapSize = blocks.RoundUp(img.blockSize/vhdSector/8, vhdSector)
	entries := int64(binary.BigEndian.Uint32(dh[vhdDhMaxEntries:]))
	if ft.curSize > uint64(entries)*uint64(bs) {
		return nil, vhdErr("disk size %d exceeds the %d blocks of %d bytes of the BAT", ft.curSize, entries, bs)
	}
	img.size = int64(ft.curSize)
	tableOff := binary.BigEndian.Uint64(dh[vhdDhTableOff:])
	if tableOff > uint64(img.fileSize) || entries*4 > img.fileSize-int64(tableOff) {
		return nil, vhdErr("BAT (%d entries at offset %d) outside the file", entries, tableOff)
	}
	img.bat = blocks.NewTable(f, int64(tableOff), entries, 4, "vhd")
	return img, nil
}

// vhdParentName is ` "NAME"`, the parent a differencing disk's dynamic
// header names (UTF-16 big endian), or "" when it cannot be read.
func vhdParentName(f io.ReaderAt, dataOffset uint64, fileSize int64) string {
	const nameOff, nameLen = 64, 512
	if dataOffset > uint64(fileSize) || int64(dataOffset) > fileSize-vhdDynHeaderSize {
		return ""
	}
	b := make([]byte, nameLen)
	if image.ReadFull(f, b, int64(dataOffset)+nameOff, "vhd", "parent name") != nil {
		return ""
	}
	u := make([]uint16, 0, nameLen/2)
	for i := 0; i < nameLen; i += 2 {
		c := binary.BigEndian.Uint16(b[i:])
		if c == 0 {
			break
		}
		u = append(u, c)
	}
	if len(u) == 0 {
		return ""
	}
	return fmt.Sprintf(" %q", string(utf16.Decode(u)))
}

func (v *vhdImage) Size() int64       { return v.size }
func (v *vhdImage) Format() string    { return "vhd" }
func (v *vhdImage) Close() error      { return v.f.Close() }
func (v *vhdImage) Subformat() string { return blocks.Subformat(v.dynamic) }

func (v *vhdImage) Extents() ([]sparse.Extent, error) {
	if !v.dynamic {
		exts, err := sparse.Extents(v.f)
		if err != nil {
			return nil, err
		}
		var out []sparse.Extent
		for _, e := range exts {
			end := min(e.Off+e.Len, v.size)
			if e.Off < end {
				out = blocks.MergeExtent(out, e.Off, end-e.Off)
			}
		}
		return out, nil
	}
	var out []sparse.Extent
	nBlocks := (v.size + v.blockSize - 1) / v.blockSize
	for i := int64(0); i < nBlocks; i++ {
		e, err := v.bat.Get(i)
		if err != nil {
			return nil, err
		}
		if e == vhdNoBlock {
			continue
		}
		off := i * v.blockSize
		out = blocks.MergeExtent(out, off, min(v.blockSize, v.size-off))
	}
	return out, nil
}

func (v *vhdImage) ReadAt(p []byte, off int64) (int, error) {
	if !v.dynamic {
		return image.ReadPieces(p, off, v.size, v.size, "vhd", func(b []byte, _, in int64) error {
			return image.ReadFull(v.f, b, in, "vhd", "disk data")
		})
	}
	return image.ReadPieces(p, off, v.size, v.blockSize, "vhd", func(b []byte, blk, in int64) error {
		e, err := v.bat.Get(blk)
		if err != nil {
			return err
		}
		if e == vhdNoBlock {
			clear(b)
			return nil
		}
		return v.readBlock(b, int64(e)*vhdSector, in)
	})
}

// readBlock reads p from offset in of the block whose sector bitmap is at
// bmOff, honouring the bitmap: sectors whose bit is clear read as zeros.
func (v *vhdImage) readBlock(p []byte, bmOff, in int64) error {
	s0 := in / vhdSector
	s1 := (in + int64(len(p)) + vhdSector - 1) / vhdSector // sectors [s0, s1)
	bm := make([]byte, (s1+7)/8-s0/8)
	if err := image.ReadFull(v.f, bm, bmOff+s0/8, "vhd", "sector bitmap"); err != nil {
		return err
	}
	present := func(s int64) bool {
		i := s - s0/8*8
		return bm[i/8]&(0x80>>(i%8)) != 0
	}
	dataOff := bmOff + v.bitmapSize
	for s := s0; s < s1; {
		run := s + 1
		for run < s1 && present(run) == present(s) {
			run++
		}
		a := max(s*vhdSector, in) - in
		b := min(run*vhdSector, in+int64(len(p))) - in
		if present(s) {
			if err := image.ReadFull(v.f, p[a:b], dataOff+in+a, "vhd", "data block"); err != nil {
				return err
			}
		} else {
			clear(p[a:b])
		}
		s = run
	}
	return nil
}
