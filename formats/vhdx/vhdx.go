// Package vhdx writes, reads and checks VHDX, after [MS-VHDX] ("Virtual
// Hard Disk v2 (VHDX) File Format"): Write, Open, and Check for the
// structural rules Hyper-V applies. It deliberately does not write or read
// differencing files, replay a log, or know what Hyper-V needs beyond the
// file (package formats checks the partition table). All
// fields are little-endian; GUIDs are stored in Microsoft's mixed-endian
// layout; checksums are CRC-32C over the structure with its checksum field
// zeroed.
//
// Layout written (every region 1 MiB aligned):
//
//	0        file type identifier "vhdxfile", creator "Kiln"
//	64 KiB   header 1 (sequence number 1)
//	128 KiB  header 2 (sequence number 2, the current one)
//	192 KiB  region table, 256 KiB its copy (BAT and metadata, required)
//	1 MiB    log, 1 MiB, empty (LogGuid zero: nothing to replay)
//	2 MiB    metadata region, 1 MiB: table + the five required items
//	3 MiB    BAT, rounded up to 1 MiB
//	...      payload blocks, in disk order, only those holding data
//
// Choices made by the writer:
//
//   - Block size 1 MiB, the smallest the format allows: Microsoft's advice
//     for Linux guests on Hyper-V (ext4 spreads its metadata over the disk,
//     so 32 MiB blocks, Hyper-V's default, allocate far more) and the
//     smallest sparse files. The BAT costs 8 bytes per MiB of disk.
//   - Logical sector 512, physical sector 4096, as Hyper-V creates them.
//   - The virtual size is the source size rounded up to the logical sector.
//   - Blocks without data are PAYLOAD_BLOCK_ZERO (2), not NOT_PRESENT (0):
//     [MS-VHDX] 2.5.1.1 lets a reader return arbitrary data for NOT_PRESENT
//     blocks of a dynamic file, ZERO blocks read as zeros by definition.
//     Data blocks are FULLY_PRESENT (6); their zero 4 KiB pieces are holes.
//   - Subformat "fixed" allocates every block (LeaveBlockAllocated set), still
//     writing only the data, so the file is as sparse as the host allows.
//   - FileWriteGuid, DataWriteGuid and the virtual disk ID (Page 83 data)
//     are derived from the contents like the VHD unique ID (a SHA-256 over
//     the size and each data block's offset and CRC-32C, blocks.ContentHash):
//     the output depends only on the disk contents.
//   - Headers are written last, so an interrupted write leaves a file that
//     no reader takes for a VHDX.
//
// The reader supports fixed and dynamic files; a differencing file (a
// parent) or one whose log must be replayed is image.ErrUnsupported.
package vhdx

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash/crc32"
	"io"
	"math/bits"
	"os"
	"strings"
	"unicode/utf16"

	"github.com/kiln-build/kiln/formats/image"
	"github.com/kiln-build/kiln/formats/internal/blocks"
	"github.com/kiln-build/kiln/internal/sparse"
)

const (
	vhdxHeader1Off   = 64 << 10
	vhdxHeader2Off   = 128 << 10
	vhdxRegion1Off   = 192 << 10
	vhdxRegion2Off   = 256 << 10
	vhdxHeaderSize   = 4 << 10
	vhdxRegionSize   = 64 << 10
	vhdxMetaTableLen = 64 << 10 // the metadata table at the start of the region

	vhdxLogOff  = 1 << 20
	vhdxLogLen  = 1 << 20
	vhdxMetaOff = 2 << 20
	vhdxMetaLen = 1 << 20
	vhdxBATOff  = 3 << 20

	vhdxBlockSize      = 1 << 20 // payload block size written
	vhdxLogicalSector  = 512
	vhdxPhysicalSector = 4096
	vhdxMaxSize        = 64 << 40 // largest virtual disk [MS-VHDX] allows
	vhdxMinBlock       = 1 << 20
	vhdxMaxBlock       = 256 << 20
	vhdxMaxEntries     = 2047 // region table and metadata table entries

	// Payload block states.
	vhdxNotPresent       = 0
	vhdxUndefined        = 1
	vhdxZero             = 2
	vhdxUnmapped         = 3
	vhdxUnmappedV095     = 5 // the 0.95 draft's value of UNMAPPED
	vhdxFullyPresent     = 6
	vhdxPartiallyPresent = 7

	// Metadata entry flags.
	vhdxMetaIsUser        = 1
	vhdxMetaIsVirtualDisk = 2
	vhdxMetaIsRequired    = 4
)

// vhdxGUID parses a GUID written the usual way into its on-disk layout
// (first three groups little-endian).
func vhdxGUID(s string) [16]byte {
	b, err := hex.DecodeString(strings.ReplaceAll(s, "-", ""))
	if err != nil || len(b) != 16 {
		panic("bad GUID " + s)
	}
	var g [16]byte
	copy(g[:], b)
	g[0], g[1], g[2], g[3] = b[3], b[2], b[1], b[0]
	g[4], g[5] = b[5], b[4]
	g[6], g[7] = b[7], b[6]
	return g
}

var (
	vhdxRegionBAT      = vhdxGUID("2DC27766-F623-4200-9D64-115E9BFD4A08")
	vhdxRegionMetadata = vhdxGUID("8B7CA206-4790-4B9A-B8FE-575F050F886E")

	vhdxItemFileParams   = vhdxGUID("CAA16737-FA36-4D43-B3B6-33F0AA44E76B")
	vhdxItemDiskSize     = vhdxGUID("2FA54224-CD1B-4876-B211-5DBED83BF4B8")
	vhdxItemPage83       = vhdxGUID("BECA12AB-B2E6-4523-93EF-C309E000C746")
	vhdxItemLogicalSect  = vhdxGUID("8141BF1D-A96F-4709-BA47-F233A8FAAB5F")
	vhdxItemPhysicalSect = vhdxGUID("CDA348C7-445D-4471-9CC9-E9885251C556")
	vhdxItemParentLoc    = vhdxGUID("A8D35F2D-B30B-454D-ABF7-D3D84834AB0C")
)

// vhdxItem describes a required metadata item: its name and exact length.
type vhdxItem struct {
	guid   [16]byte
	name   string
	length uint32
}

var vhdxRequiredItems = []vhdxItem{
	{vhdxItemFileParams, "file parameters", 8},
	{vhdxItemDiskSize, "virtual disk size", 8},
	{vhdxItemPage83, "page 83 data (virtual disk ID)", 16},
	{vhdxItemLogicalSect, "logical sector size", 4},
	{vhdxItemPhysicalSect, "physical sector size", 4},
}

var vhdxCRCTable = crc32.MakeTable(crc32.Castagnoli)

// vhdxChecksum is the CRC-32C of b with its 4-byte checksum field at off
// taken as zero.
func vhdxChecksum(b []byte, off int) uint32 {
	c := crc32.Update(0, vhdxCRCTable, b[:off])
	c = crc32.Update(c, vhdxCRCTable, []byte{0, 0, 0, 0})
	return crc32.Update(c, vhdxCRCTable, b[off+4:])
}

func vhdxSeal(b []byte) {
	binary.LittleEndian.PutUint32(b[4:], vhdxChecksum(b, 4))
}

// vhdxGeometry is the shape of the BAT for a disk.
type vhdxGeometry struct {
	size       int64 // virtual disk size
	blockSize  int64
	chunkRatio int64 // payload blocks per sector bitmap block
	dataBlocks int64
	entries    int64 // BAT entries, payload and sector bitmap
}

func vhdxShape(size, blockSize, logical int64) vhdxGeometry {
	g := vhdxGeometry{size: size, blockSize: blockSize}
	g.chunkRatio = (int64(1) << 23) * logical / blockSize
	g.dataBlocks = (size + blockSize - 1) / blockSize
	if g.dataBlocks > 0 {
		g.entries = g.dataBlocks + (g.dataBlocks-1)/g.chunkRatio
	}
	return g
}

// batIndex is the BAT entry of payload block i.
func (g vhdxGeometry) batIndex(i int64) int64 { return i + i/g.chunkRatio }

// Write writes src as a dynamic VHDX (o.Subformat "" or "dynamic"), or
// as a fixed one (o.Subformat "fixed": every block allocated, the file still
// sparse). See the top of vhdx.go for the layout. dst is truncated first; it
// is not synced.
func Write(ctx context.Context, dst *os.File, src image.Source, o image.Options) error {
	fixed := false
	switch o.Subformat {
	case "", "dynamic":
	case "fixed":
		fixed = true
	default:
		return fmt.Errorf("vhdx: unknown subformat %q (want \"dynamic\" or \"fixed\")", o.Subformat)
	}
	if src.Size() <= 0 {
		return fmt.Errorf("vhdx: source is empty")
	}
	vsize := blocks.RoundUp(src.Size(), vhdxLogicalSector)
	if vsize > vhdxMaxSize {
		return fmt.Errorf("vhdx: a VHDX holds at most 64 TiB, the source has %d bytes", src.Size())
	}
	g := vhdxShape(vsize, vhdxBlockSize, vhdxLogicalSector)
	batLen := max(blocks.RoundUp(g.entries*8, blocks.MiB), blocks.MiB)
	payload := int64(vhdxBATOff) + batLen // first payload block
	if err := dst.Truncate(0); err != nil {
		return err
	}

	// Payload: the blocks holding data, in disk order (a fixed file puts
	// block i at payload + i*blockSize).
	next := payload
	var allocs []vhdxAlloc
	h := blocks.NewContentHash("vhdx", vsize)
	err := blocks.EachBlockAsync(ctx, src, g.blockSize, func(off int64, data []byte) error {
		h.Block(off, data)
		at := next
		if fixed {
			at = payload + off
		} else {
			next += g.blockSize
		}
		allocs = append(allocs, vhdxAlloc{block: off / g.blockSize, fileOff: at})
		return blocks.WriteRuns(dst, data, at)
	})
	if err != nil {
		return err
	}
	end := next
	if fixed {
		end = payload + g.dataBlocks*g.blockSize
	}
	if err := dst.Truncate(end); err != nil {
		return err
	}
	if err := vhdxWriteBAT(ctx, dst, g, allocs, fixed, payload); err != nil {
		return err
	}

	// Metadata region: the table, then the items from offset 64 KiB.
	meta := make([]byte, vhdxMetaTableLen+64)
	copy(meta, "metadata")
	binary.LittleEndian.PutUint16(meta[10:], uint16(len(vhdxRequiredItems)))
	itemOff := uint32(vhdxMetaTableLen)
	for i, it := range vhdxRequiredItems {
		e := meta[32+32*i:]
		copy(e, it.guid[:])
		binary.LittleEndian.PutUint32(e[16:], itemOff)
		binary.LittleEndian.PutUint32(e[20:], it.length)
		flags := uint32(vhdxMetaIsRequired | vhdxMetaIsVirtualDisk)
		if it.guid == vhdxItemFileParams {
			flags = vhdxMetaIsRequired // belongs to the file, not the disk
		}
		binary.LittleEndian.PutUint32(e[24:], flags)
		v := meta[itemOff:]
		switch it.guid {
		case vhdxItemFileParams:
			binary.LittleEndian.PutUint32(v, uint32(g.blockSize))
			if fixed {
				binary.LittleEndian.PutUint32(v[4:], 1) // LeaveBlockAllocated
			}
		case vhdxItemDiskSize:
			binary.LittleEndian.PutUint64(v, uint64(vsize))
		case vhdxItemPage83:
			id := h.GUID("vhdx virtual disk id")
			copy(v, id[:])
		case vhdxItemLogicalSect:
			binary.LittleEndian.PutUint32(v, vhdxLogicalSector)
		case vhdxItemPhysicalSect:
			binary.LittleEndian.PutUint32(v, vhdxPhysicalSector)
		}
		itemOff += it.length
	}
	if _, err := dst.WriteAt(meta, vhdxMetaOff); err != nil {
		return err
	}

	// Region table and its copy.
	rt := make([]byte, vhdxRegionSize)
	copy(rt, "regi")
	binary.LittleEndian.PutUint32(rt[8:], 2)
	for i, r := range []struct {
		guid     [16]byte
		off, len int64
	}{{vhdxRegionBAT, vhdxBATOff, batLen}, {vhdxRegionMetadata, vhdxMetaOff, vhdxMetaLen}} {
		e := rt[16+32*i:]
		copy(e, r.guid[:])
		binary.LittleEndian.PutUint64(e[16:], uint64(r.off))
		binary.LittleEndian.PutUint32(e[24:], uint32(r.len))
		binary.LittleEndian.PutUint32(e[28:], 1) // required
	}
	vhdxSeal(rt)
	for _, off := range []int64{vhdxRegion1Off, vhdxRegion2Off} {
		if _, err := dst.WriteAt(rt, off); err != nil {
			return err
		}
	}

	// File type identifier, then the two headers.
	ident := make([]byte, 8+512)
	copy(ident, "vhdxfile")
	for i, c := range utf16.Encode([]rune("Kiln")) {
		binary.LittleEndian.PutUint16(ident[8+2*i:], c)
	}
	if _, err := dst.WriteAt(ident, 0); err != nil {
		return err
	}
	fileWrite, dataWrite := h.GUID("vhdx file write guid"), h.GUID("vhdx data write guid")
	for i, off := range []int64{vhdxHeader1Off, vhdxHeader2Off} {
		hd := make([]byte, vhdxHeaderSize)
		copy(hd, "head")
		binary.LittleEndian.PutUint64(hd[8:], uint64(i+1))
		copy(hd[16:], fileWrite[:])
		copy(hd[32:], dataWrite[:])
		// LogGuid (48) stays zero: the log is empty.
		binary.LittleEndian.PutUint16(hd[64:], 0) // LogVersion
		binary.LittleEndian.PutUint16(hd[66:], 1) // Version
		binary.LittleEndian.PutUint32(hd[68:], vhdxLogLen)
		binary.LittleEndian.PutUint64(hd[72:], vhdxLogOff)
		vhdxSeal(hd)
		if _, err := dst.WriteAt(hd, off); err != nil {
			return err
		}
	}
	return nil
}

// vhdxAlloc is a payload block written: its index and file offset.
type vhdxAlloc struct{ block, fileOff int64 }

// vhdxWriteBAT writes the BAT a page at a time: allocated blocks
// FULLY_PRESENT, the others ZERO, sector bitmap entries NOT_PRESENT.
func vhdxWriteBAT(ctx context.Context, dst *os.File, g vhdxGeometry, allocs []vhdxAlloc, fixed bool, payload int64) error {
	const page = 64 << 10
	buf := make([]byte, page)
	k := 0 // next alloc
	for e0 := int64(0); e0 < g.entries; e0 += page / 8 {
		if err := ctx.Err(); err != nil {
			return err
		}
		n := min(page/8, g.entries-e0)
		clear(buf)
		for p := e0; p < e0+n; p++ {
			if (p+1)%(g.chunkRatio+1) == 0 {
				continue // sector bitmap entry: NOT_PRESENT
			}
			i := p - p/(g.chunkRatio+1) // payload block
			v := uint64(vhdxZero)
			for k < len(allocs) && allocs[k].block < i {
				k++
			}
			switch {
			case k < len(allocs) && allocs[k].block == i:
				v = uint64(allocs[k].fileOff) | vhdxFullyPresent
			case fixed:
				v = uint64(payload+i*g.blockSize) | vhdxFullyPresent
			}
			binary.LittleEndian.PutUint64(buf[(p-e0)*8:], v)
		}
		if _, err := dst.WriteAt(buf[:n*8], vhdxBATOff+e0*8); err != nil {
			return err
		}
	}
	return nil
}

// vhdxHeader is a parsed header.
type vhdxHeader struct {
	seq        uint64
	logGUID    [16]byte
	logVersion uint16
	version    uint16
	logLen     uint32
	logOff     uint64
}

// vhdxParseHeader parses a 4 KiB header; problem is "" if it is valid.
func vhdxParseHeader(b []byte) (h vhdxHeader, problem string) {
	if string(b[:4]) != "head" {
		return h, "bad signature (want \"head\")"
	}
	if binary.LittleEndian.Uint32(b[4:]) != vhdxChecksum(b, 4) {
		return h, "CRC-32C mismatch"
	}
	h.seq = binary.LittleEndian.Uint64(b[8:])
	copy(h.logGUID[:], b[48:64])
	h.logVersion = binary.LittleEndian.Uint16(b[64:])
	h.version = binary.LittleEndian.Uint16(b[66:])
	h.logLen = binary.LittleEndian.Uint32(b[68:])
	h.logOff = binary.LittleEndian.Uint64(b[72:])
	if h.version != 1 {
		return h, fmt.Sprintf("version %d (want 1)", h.version)
	}
	return h, ""
}

// vhdxRegion is a region table entry.
type vhdxRegion struct {
	guid     [16]byte
	off      uint64
	length   uint32
	required bool
}

// vhdxParseRegionTable parses a 64 KiB region table; problem is "" if it is
// valid.
func vhdxParseRegionTable(b []byte) (rs []vhdxRegion, problem string) {
	if string(b[:4]) == "regi" && binary.LittleEndian.Uint32(b[4:]) != vhdxChecksum(b, 4) {
		return nil, "CRC-32C mismatch"
	}
	problem = vhdxEntries(b, "regi", binary.LittleEndian.Uint32(b[8:]), 16, func(e []byte) {
		rs = append(rs, vhdxRegion{guid: [16]byte(e[:16]), off: binary.LittleEndian.Uint64(e[16:]),
			length: binary.LittleEndian.Uint32(e[24:]), required: binary.LittleEndian.Uint32(e[28:])&1 != 0})
	})
	return rs, problem
}

// vhdxEntries checks a table's signature and its number of entries, n,
// and hands each 32-byte entry, the first at offset first, to entry. It
// returns the problem, "" if none.
func vhdxEntries(b []byte, sig string, n uint32, first int, entry func(e []byte)) string {
	if string(b[:len(sig)]) != sig {
		return fmt.Sprintf("bad signature (want %q)", sig)
	}
	if n > vhdxMaxEntries {
		return fmt.Sprintf("%d entries (at most %d)", n, vhdxMaxEntries)
	}
	for i := range int(n) {
		entry(b[first+32*i:])
	}
	return ""
}

// vhdxMetaEntry is a metadata table entry.
type vhdxMetaEntry struct {
	guid           [16]byte
	off, length    uint32
	user, required bool
}

// vhdxParseMetaTable parses the 64 KiB metadata table; problem is "" if its
// header is valid.
func vhdxParseMetaTable(b []byte) (es []vhdxMetaEntry, problem string) {
	problem = vhdxEntries(b, "metadata", uint32(binary.LittleEndian.Uint16(b[10:])), 32, func(e []byte) {
		fl := binary.LittleEndian.Uint32(e[24:])
		es = append(es, vhdxMetaEntry{guid: [16]byte(e[:16]), off: binary.LittleEndian.Uint32(e[16:]),
			length: binary.LittleEndian.Uint32(e[20:]), user: fl&vhdxMetaIsUser != 0, required: fl&vhdxMetaIsRequired != 0})
	})
	return es, problem
}

// vhdxErr makes a *image.FormatError.
func vhdxErr(format string, a ...any) error { return image.Errorf("vhdx", format, a...) }

// vhdxImage is an open VHDX.
type vhdxImage struct {
	f        *os.File
	fileSize int64
	g        vhdxGeometry
	fixed    bool
	bat      *blocks.Table
}

// Open opens a fixed or dynamic VHDX. A differencing file, or one whose
// log needs replaying, is image.ErrUnsupported; a malformed file is a
// *image.FormatError.
func Open(path string) (image.Image, error) {
	return image.Open(path, vhdxOpen)
}

// vhdxLayout is what vhdxOpen finds in a file.
type vhdxLayout struct {
	header     vhdxHeader
	bat, meta  vhdxRegion
	blockSize  int64
	fixed      bool
	hasParent  bool
	size       int64
	logical    int64
	physical   int64
	diskID     [16]byte
	unknownReq string // an unknown required region or metadata item
}

func vhdxOpen(f *os.File, fileSize int64) (*vhdxImage, error) {
	l, err := vhdxReadLayout(f, fileSize)
	if err != nil {
		return nil, err
	}
	img := &vhdxImage{f: f, fileSize: fileSize, fixed: l.fixed}
	img.g = vhdxShape(l.size, l.blockSize, l.logical)
	if uint64(img.g.entries)*8 > uint64(l.bat.length) {
		return nil, vhdxErr("BAT region of %d bytes is too small for %d entries", l.bat.length, img.g.entries)
	}
	if l.bat.off > uint64(img.fileSize) || img.g.entries*8 > img.fileSize-int64(l.bat.off) {
		return nil, vhdxErr("BAT (%d entries at offset %d) outside the file", img.g.entries, l.bat.off)
	}
	img.bat = blocks.NewTable(f, int64(l.bat.off), img.g.entries, 8, "vhdx")
	return img, nil
}

// vhdxReadLayout reads and validates the headers, region table and metadata
// of a VHDX.
func vhdxReadLayout(f io.ReaderAt, fileSize int64) (*vhdxLayout, error) {
	l := &vhdxLayout{}
	ident := make([]byte, 8)
	if err := image.ReadFull(f, ident, 0, "vhdx", "file type identifier"); err != nil {
		return nil, err
	}
	if string(ident) != "vhdxfile" {
		return nil, vhdxErr("no file type identifier (signature \"vhdxfile\")")
	}

	// The current header: the valid one with the larger sequence number.
	buf := make([]byte, vhdxRegionSize)
	found := false
	for _, off := range []int64{vhdxHeader1Off, vhdxHeader2Off} {
		if image.ReadFull(f, buf[:vhdxHeaderSize], off, "vhdx", "header") != nil {
			continue
		}
		h, problem := vhdxParseHeader(buf[:vhdxHeaderSize])
		if problem != "" {
			continue
		}
		if !found || h.seq > l.header.seq {
			l.header, found = h, true
		}
	}
	if !found {
		return nil, vhdxErr("no valid header")
	}
	if l.header.logGUID != ([16]byte{}) {
		return nil, fmt.Errorf("vhdx: the log holds entries to replay: %w", image.ErrUnsupported)
	}

	// The region table, or its copy.
	var regions []vhdxRegion
	found = false
	for _, off := range []int64{vhdxRegion1Off, vhdxRegion2Off} {
		if image.ReadFull(f, buf, off, "vhdx", "region table") != nil {
			continue
		}
		rs, problem := vhdxParseRegionTable(buf)
		if problem == "" {
			regions, found = rs, true
			break
		}
	}
	if !found {
		return nil, vhdxErr("no valid region table")
	}
	var haveBAT, haveMeta bool
	for _, r := range regions {
		switch r.guid {
		case vhdxRegionBAT:
			if haveBAT {
				return nil, vhdxErr("two BAT regions")
			}
			l.bat, haveBAT = r, true
		case vhdxRegionMetadata:
			if haveMeta {
				return nil, vhdxErr("two metadata regions")
			}
			l.meta, haveMeta = r, true
		default:
			if r.required {
				return nil, fmt.Errorf("vhdx: unknown required region %s: %w", vhdxGUIDString(r.guid), image.ErrUnsupported)
			}
		}
	}
	if !haveBAT || !haveMeta {
		return nil, vhdxErr("region table lacks the BAT or the metadata region")
	}

	// The metadata table and the items Kiln needs.
	if l.meta.length < vhdxMetaTableLen || l.meta.off > uint64(fileSize) {
		return nil, vhdxErr("metadata region (%d bytes at %d) too small or outside the file", l.meta.length, l.meta.off)
	}
	if err := image.ReadFull(f, buf, int64(l.meta.off), "vhdx", "metadata table"); err != nil {
		return nil, err
	}
	entries, problem := vhdxParseMetaTable(buf)
	if problem != "" {
		return nil, vhdxErr("metadata table: %s", problem)
	}
	items := map[[16]byte][]byte{}
	for _, e := range entries {
		var want uint32
		for _, it := range vhdxRequiredItems {
			if it.guid == e.guid && !e.user {
				want = it.length
			}
		}
		if want == 0 {
			if e.guid == vhdxItemParentLoc && !e.user {
				l.hasParent = true
			} else if e.required {
				return nil, fmt.Errorf("vhdx: unknown required metadata item %s: %w", vhdxGUIDString(e.guid), image.ErrUnsupported)
			}
			continue
		}
		if _, dup := items[e.guid]; dup {
			return nil, vhdxErr("metadata item %s twice", vhdxGUIDString(e.guid))
		}
		if e.length != want || e.off < vhdxMetaTableLen || uint64(e.off)+uint64(e.length) > uint64(l.meta.length) {
			return nil, vhdxErr("metadata item %s: %d bytes at offset %d (want %d bytes past 64 KiB, inside the region)",
				vhdxGUIDString(e.guid), e.length, e.off, want)
		}
		v := make([]byte, want)
		if err := image.ReadFull(f, v, int64(l.meta.off)+int64(e.off), "vhdx", "metadata item"); err != nil {
			return nil, err
		}
		items[e.guid] = v
	}
	for _, it := range vhdxRequiredItems {
		if items[it.guid] == nil {
			return nil, vhdxErr("required metadata item %q missing", it.name)
		}
	}
	fp := items[vhdxItemFileParams]
	l.blockSize = int64(binary.LittleEndian.Uint32(fp))
	flags := binary.LittleEndian.Uint32(fp[4:])
	l.fixed = flags&1 != 0
	l.hasParent = l.hasParent || flags&2 != 0
	if l.hasParent {
		return nil, fmt.Errorf("vhdx: differencing disk (has a parent): %w", image.ErrUnsupported)
	}
	if bits.OnesCount64(uint64(l.blockSize)) != 1 || l.blockSize < vhdxMinBlock || l.blockSize > vhdxMaxBlock {
		return nil, vhdxErr("block size %d is not a power of two between 1 MiB and 256 MiB", l.blockSize)
	}
	l.logical = int64(binary.LittleEndian.Uint32(items[vhdxItemLogicalSect]))
	l.physical = int64(binary.LittleEndian.Uint32(items[vhdxItemPhysicalSect]))
	if l.logical != 512 && l.logical != 4096 {
		return nil, vhdxErr("logical sector size %d (want 512 or 4096)", l.logical)
	}
	if l.physical != 512 && l.physical != 4096 {
		return nil, vhdxErr("physical sector size %d (want 512 or 4096)", l.physical)
	}
	size := binary.LittleEndian.Uint64(items[vhdxItemDiskSize])
	if size > vhdxMaxSize || size%uint64(l.logical) != 0 {
		return nil, vhdxErr("virtual disk size %d (want a multiple of %d, at most 64 TiB)", size, l.logical)
	}
	l.size = int64(size)
	copy(l.diskID[:], items[vhdxItemPage83])
	return l, nil
}

// vhdxGUIDString formats an on-disk GUID the usual way.
func vhdxGUIDString(g [16]byte) string {
	return fmt.Sprintf("%08X-%04X-%04X-%X-%X",
		binary.LittleEndian.Uint32(g[0:]), binary.LittleEndian.Uint16(g[4:]),
		binary.LittleEndian.Uint16(g[6:]), g[8:10], g[10:])
}

func (v *vhdxImage) Size() int64       { return v.g.size }
func (v *vhdxImage) Format() string    { return "vhdx" }
func (v *vhdxImage) Close() error      { return v.f.Close() }
func (v *vhdxImage) Subformat() string { return blocks.Subformat(!v.fixed) }

// block returns the file offset of payload block i, or -1 if it reads as
// zeros.
func (v *vhdxImage) block(i int64) (int64, error) {
	e, err := v.bat.Get(v.g.batIndex(i))
	if err != nil {
		return 0, err
	}
	switch e & 7 {
	case vhdxNotPresent, vhdxUndefined, vhdxZero, vhdxUnmapped, vhdxUnmappedV095:
		return -1, nil
	case vhdxFullyPresent:
		off := e &^ (1<<20 - 1)
		if off < 1<<20 || off > uint64(v.fileSize) {
			return 0, vhdxErr("block %d at offset %d, outside the file's data area", i, off)
		}
		return int64(off), nil
	case vhdxPartiallyPresent:
		return 0, vhdxErr("block %d partially present in a file without a parent", i)
	default:
		return 0, vhdxErr("block %d in reserved state %d", i, e&7)
	}
}

func (v *vhdxImage) Extents() ([]sparse.Extent, error) {
	var out []sparse.Extent
	for i := int64(0); i < v.g.dataBlocks; i++ {
		off, err := v.block(i)
		if err != nil {
			return nil, err
		}
		if off >= 0 {
			start := i * v.g.blockSize
			out = blocks.MergeExtent(out, start, min(v.g.blockSize, v.g.size-start))
		}
	}
	return out, nil
}

func (v *vhdxImage) ReadAt(p []byte, off int64) (int, error) {
	return image.ReadPieces(p, off, v.g.size, v.g.blockSize, "vhdx", func(b []byte, i, in int64) error {
		at, err := v.block(i)
		if err != nil {
			return err
		}
		if at < 0 {
			clear(b)
			return nil
		}
		return image.ReadFull(v.f, b, at+in, "vhdx", "payload block")
	})
}
