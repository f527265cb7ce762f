// Package vmdk writes and reads single-file VMDK disks, following VMware's
// "Virtual Disk Format 1.1" (and 5.0) technical notes: the monolithicSparse
// and streamOptimized subformats (Write, Open). Package ova builds on
// WriteStream and OpenAt.
//
// It deliberately does not read or write disks split over several files,
// descriptor-only files, flat extents, ESX (COWD) sparse extents or delta
// disks (those are ErrUnsupported), and it does not decide which subformat
// a platform wants (package formats does). Grains are compressed with
// internal/deflate, not compress/flate (see there why).
//
// monolithicSparse (VMware's and qemu-img's layout):
//
//	sector 0        sparse extent header (version 1, flags: valid newline
//	                detection | redundant grain directory)
//	sectors 1..20   embedded descriptor
//	                redundant grain directory, redundant grain tables
//	                grain directory, grain tables (all preallocated)
//	overHead        grains of 64 KiB, in LBA order, only the non-zero ones
//
// streamOptimized (VMware's layout, the one vSphere and ovftool expect):
//
//	sector 0        header (version 3, flags: newline detection |
//	                compressed | markers, gdOffset = GD_AT_END)
//	sectors 1..20   embedded descriptor, zero padding up to sector 128
//	                for each grain table in use: its grains, each a grain
//	                marker (LBA, compressed size) followed by the zlib
//	                stream, padded to a sector; then a GT marker and the GT
//	                GD marker, grain directory
//	                footer marker, footer (the header with the real
//	                gdOffset), end-of-stream marker
//
// qemu-img 7.2 writes streamOptimized differently (a preallocated grain
// directory and tables at the front, gdOffset in the leading header, and no
// footer); both read with qemu-img and with Open. Kiln follows VMware's
// layout because ESXi rejects streamOptimized disks without the footer and
// end-of-stream marker when deploying an OVA.
//
// The descriptor says ddb.adapterType = "lsilogic" with SCSI geometry
// (255 heads, 63 sectors), matching the LSI Logic SCSI controller of the
// OVA's virtual machine; ddb.virtualHWVersion = "4" as VMware and qemu-img
// write it for the widest compatibility. The CID is a CRC-32C of the disk's
// content (every non-zero 64 KiB grain with its offset), so equal disks get
// equal CIDs and the output is reproducible; parentCID is ffffffff (no
// parent). streamOptimized needs the CID before its first grain, so it
// reads the data once more for it (about 3% of its time).
//
// VMDK sizes count sectors: a virtual size that is not a whole number of
// sectors is rounded up, and the last grain is padded with zeros.
package vmdk

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"

	"github.com/kiln-build/kiln/formats/image"
	"github.com/kiln-build/kiln/internal/deflate"
)

const (
	Sector           = 512
	vmdkGrainSectors = 128 // 64 KiB grains
	GrainSize        = vmdkGrainSectors * Sector
	vmdkGTEs         = 512 // entries per grain table: a GT maps 32 MiB
	vmdkGTSectors    = vmdkGTEs * 4 / Sector
	vmdkDescSectors  = 20         // room reserved for the embedded descriptor
	vmdkStreamOver   = 128        // streamOptimized: first grain at 64 KiB
	vmdkMagic        = 0x564d444b // "KDMV" on disk
	vmdkGDAtEnd      = ^uint64(0)
	vmdkMaxSize      = 64 << 40 // largest virtual disk written or read

	vmdkFlagNewline   = 1 << 0
	vmdkFlagRGD       = 1 << 1
	vmdkFlagZeroGrain = 1 << 2
	vmdkFlagCompress  = 1 << 16
	vmdkFlagMarkers   = 1 << 17

	vmdkMarkerEOS    = 0
	vmdkMarkerGT     = 1
	vmdkMarkerGD     = 2
	vmdkMarkerFooter = 3

	vmdkCompressDeflate = 1

	// VMDK subformats (createType values) Kiln writes and reads.
	MonolithicSparse = "monolithicSparse"
	StreamOptimized  = "streamOptimized"
)

// vmdkHeader is the SparseExtentHeader.
type vmdkHeader struct {
	Version       uint32
	Flags         uint32
	Capacity      uint64 // sectors
	GrainSize     uint64 // sectors
	DescOffset    uint64 // sectors
	DescSize      uint64 // sectors
	NumGTEsPerGT  uint32
	RGDOffset     uint64 // sectors
	GDOffset      uint64 // sectors
	OverHead      uint64 // sectors
	Unclean       uint8
	NewlineChars  [4]byte // '\n', ' ', '\r', '\n' when intact
	CompressAlgor uint16
}

func (h *vmdkHeader) marshal() []byte {
	b := make([]byte, Sector)
	le := binary.LittleEndian
	le.PutUint32(b[0:], vmdkMagic)
	le.PutUint32(b[4:], h.Version)
	le.PutUint32(b[8:], h.Flags)
	le.PutUint64(b[12:], h.Capacity)
	le.PutUint64(b[20:], h.GrainSize)
	le.PutUint64(b[28:], h.DescOffset)
	le.PutUint64(b[36:], h.DescSize)
	le.PutUint32(b[44:], h.NumGTEsPerGT)
	le.PutUint64(b[48:], h.RGDOffset)
	le.PutUint64(b[56:], h.GDOffset)
	le.PutUint64(b[64:], h.OverHead)
	b[72] = h.Unclean
	copy(b[73:77], "\n \r\n")
	le.PutUint16(b[77:], h.CompressAlgor)
	return b
}

// vmdkParseHeader decodes a header sector; ok is false without the magic.
func vmdkParseHeader(b []byte) (h vmdkHeader, ok bool) {
	le := binary.LittleEndian
	if len(b) < Sector || le.Uint32(b[0:]) != vmdkMagic {
		return h, false
	}
	h.Version = le.Uint32(b[4:])
	h.Flags = le.Uint32(b[8:])
	h.Capacity = le.Uint64(b[12:])
	h.GrainSize = le.Uint64(b[20:])
	h.DescOffset = le.Uint64(b[28:])
	h.DescSize = le.Uint64(b[36:])
	h.NumGTEsPerGT = le.Uint32(b[44:])
	h.RGDOffset = le.Uint64(b[48:])
	h.GDOffset = le.Uint64(b[56:])
	h.OverHead = le.Uint64(b[64:])
	h.Unclean = b[72]
	copy(h.NewlineChars[:], b[73:77])
	h.CompressAlgor = le.Uint16(b[77:])
	return h, true
}

// vmdkMarker is a streamOptimized metadata marker sector.
func vmdkMarker(sectors uint64, typ uint32) []byte {
	b := make([]byte, Sector)
	binary.LittleEndian.PutUint64(b[0:], sectors)
	binary.LittleEndian.PutUint32(b[12:], typ)
	return b
}

// vmdkDescriptor is the embedded descriptor text, padded to its reserved
// sectors.
func vmdkDescriptor(cid uint32, createType string, capSectors uint64, fileName string) []byte {
	cyl := capSectors / (255 * 63)
	if cyl == 0 {
		cyl = 1
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, "# Disk DescriptorFile\nversion=1\nencoding=\"UTF-8\"\nCID=%08x\nparentCID=ffffffff\ncreateType=%q\n\n", cid, createType)
	fmt.Fprintf(&sb, "# Extent description\nRW %d SPARSE %q\n\n", capSectors, fileName)
	sb.WriteString("# The Disk Data Base\n#DDB\n\n")
	sb.WriteString("ddb.adapterType = \"lsilogic\"\n")
	fmt.Fprintf(&sb, "ddb.geometry.cylinders = \"%d\"\n", cyl)
	sb.WriteString("ddb.geometry.heads = \"255\"\n")
	sb.WriteString("ddb.geometry.sectors = \"63\"\n")
	sb.WriteString("ddb.toolsVersion = \"2147483647\"\n") // guest-managed tools (open-vm-tools)
	sb.WriteString("ddb.virtualHWVersion = \"4\"\n")
	b := make([]byte, vmdkDescSectors*Sector)
	copy(b, sb.String())
	return b
}

// vmdkFileName is the extent file name the descriptor names: the base
// name of the file, without characters that would break the quoted string.
func vmdkFileName(name string) string {
	name = filepath.Base(name)
	name = strings.Map(func(r rune) rune {
		if r == '"' || r == '\\' || r < ' ' || r == 0x7f {
			return '_'
		}
		return r
	}, name)
	if name == "" || name == "." || name == "/" {
		return "disk.vmdk"
	}
	return name
}

var vmdkCRC = crc32.MakeTable(crc32.Castagnoli)

// vmdkCIDUpdate folds one non-zero grain into a content CID.
func vmdkCIDUpdate(crc uint32, off int64, data []byte) uint32 {
	var o [8]byte
	binary.LittleEndian.PutUint64(o[:], uint64(off))
	crc = crc32.Update(crc, vmdkCRC, o[:])
	return crc32.Update(crc, vmdkCRC, data)
}

// vmdkCIDFinal avoids the CID values that mean "no parent" or "invalid".
func vmdkCIDFinal(crc uint32) uint32 {
	if crc == 0xffffffff || crc == 0xfffffffe || crc == 0 {
		crc ^= 0x5a5a5a5a
	}
	return crc
}

// vmdkContentCID computes the content CID in one pass over src.
func vmdkContentCID(ctx context.Context, src image.Source) (uint32, error) {
	var crc uint32
	err := image.ForEachBlock(src, GrainSize, func(off int64, data []byte) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		crc = vmdkCIDUpdate(crc, off, data)
		return nil
	})
	return vmdkCIDFinal(crc), err
}

// vmdkCapacity checks a virtual size and returns it in sectors.
func vmdkCapacity(size int64) (uint64, error) {
	if size < 0 || size > vmdkMaxSize {
		return 0, fmt.Errorf("vmdk: virtual size %d is out of range (0 to %d bytes)", size, int64(vmdkMaxSize))
	}
	return uint64((size + Sector - 1) / Sector), nil
}

// StartFile readies a regular file for writing from offset 0.
func StartFile(f *os.File) (regular bool, err error) {
	fi, err := f.Stat()
	if err != nil {
		return false, err
	}
	if !fi.Mode().IsRegular() {
		return false, nil
	}
	// Truncate only when needed: on ext4, truncating to zero makes the
	// close flush the file to disk (auto_da_alloc), which costs more than
	// writing it.
	if fi.Size() > 0 {
		if err := f.Truncate(0); err != nil {
			return true, err
		}
	}
	_, err = f.Seek(0, io.SeekStart)
	return true, err
}

// Write writes src as a single-file VMDK with an embedded descriptor:
// o.Subformat "monolithicSparse" (the default) or "streamOptimized". The
// virtual size is src.Size() rounded up to a whole sector. dst is written
// from offset 0 and its old content is discarded. streamOptimized output is
// written strictly in order (dst may be a pipe) and its grains are
// compressed on o.Workers goroutines (0 = runtime.NumCPU()); the bytes do
// not depend on the number of workers. monolithicSparse needs a regular
// file. The descriptor names the extent by dst's base name. Write does
// not fsync dst; that is the caller's choice.
func Write(ctx context.Context, dst *os.File, src image.Source, o image.Options) error {
	sub := o.Subformat
	if sub == "" {
		sub = MonolithicSparse
	}
	switch sub {
	case MonolithicSparse:
		return vmdkWriteMonolithic(ctx, dst, src)
	case StreamOptimized:
		if _, err := StartFile(dst); err != nil {
			return err
		}
		bw := bufio.NewWriterSize(dst, 1<<20)
		if _, err := WriteStream(ctx, bw, vmdkFileName(dst.Name()), src, src.Size(), o.Workers); err != nil {
			return err
		}
		return bw.Flush()
	}
	return fmt.Errorf("vmdk: unknown subformat %q (want monolithicSparse or streamOptimized): %w", o.Subformat, image.ErrUnsupported)
}

// vmdkChunk is a run of consecutive grains on its way to the file.
type vmdkChunk struct {
	data []byte
	at   int64   // file offset
	offs []int64 // virtual offset of each grain, for the CID
}

func vmdkWriteMonolithic(ctx context.Context, dst *os.File, src image.Source) error {
	capSectors, err := vmdkCapacity(src.Size())
	if err != nil {
		return err
	}
	regular, err := StartFile(dst)
	if err != nil {
		return err
	}
	if !regular {
		return fmt.Errorf("vmdk: monolithicSparse needs a regular file, %s is not one", dst.Name())
	}
	grains := (capSectors + vmdkGrainSectors - 1) / vmdkGrainSectors
	numGTs := max(1, (grains+vmdkGTEs-1)/vmdkGTEs)
	gdSectors := (numGTs*4 + Sector - 1) / Sector
	rgd := uint64(1 + vmdkDescSectors)
	rgt := rgd + gdSectors
	gd := rgt + numGTs*vmdkGTSectors
	gt := gd + gdSectors
	over := (gt + numGTs*vmdkGTSectors + vmdkGrainSectors - 1) / vmdkGrainSectors * vmdkGrainSectors
	if gt+numGTs*vmdkGTSectors > 1<<32 {
		return fmt.Errorf("vmdk: virtual size %d needs grain tables beyond the format's 2 TiB offsets", src.Size())
	}
	h := vmdkHeader{
		Version: 1, Flags: vmdkFlagNewline | vmdkFlagRGD,
		Capacity: capSectors, GrainSize: vmdkGrainSectors,
		DescOffset: 1, DescSize: vmdkDescSectors,
		NumGTEsPerGT: vmdkGTEs, RGDOffset: rgd, GDOffset: gd, OverHead: over,
	}
	if _, err := dst.WriteAt(h.marshal(), 0); err != nil {
		return err
	}
	// Both grain directories point at their preallocated tables.
	gdBuf := make([]byte, gdSectors*Sector)
	for _, at := range []struct{ dir, tables uint64 }{{rgd, rgt}, {gd, gt}} {
		for i := uint64(0); i < numGTs; i++ {
			binary.LittleEndian.PutUint32(gdBuf[i*4:], uint32(at.tables+i*vmdkGTSectors))
		}
		if _, err := dst.WriteAt(gdBuf, int64(at.dir)*Sector); err != nil {
			return err
		}
	}

	// Grains are gathered into 1 MiB chunks here and written (and folded
	// into the CID) by a second goroutine, so reading and writing overlap.
	const chunkGrains = 16
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	free := make(chan *vmdkChunk, 3)
	for i := 0; i < cap(free); i++ {
		free <- &vmdkChunk{data: make([]byte, 0, chunkGrains*GrainSize)}
	}
	full := make(chan *vmdkChunk, cap(free))
	var crc uint32
	var writeErr error
	size := src.Size()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for c := range full {
			if writeErr == nil {
				for i, off := range c.offs {
					n := min(GrainSize, size-off) // as image.ForEachBlock gave it
					crc = vmdkCIDUpdate(crc, off, c.data[i*GrainSize:i*GrainSize+int(n)])
				}
				if _, err := dst.WriteAt(c.data, c.at); err != nil {
					writeErr = err
					cancel()
				}
			}
			free <- c
		}
	}()

	next := over // sector of the next grain
	curGT := int64(-1)
	table := make([]byte, vmdkGTEs*4)
	tableUsed := false
	flushGT := func() error {
		if !tableUsed {
			return nil
		}
		for _, base := range []uint64{rgt, gt} {
			if _, err := dst.WriteAt(table, int64(base+uint64(curGT)*vmdkGTSectors)*Sector); err != nil {
				return err
			}
		}
		clear(table)
		tableUsed = false
		return nil
	}
	c := <-free
	c.at = int64(next) * Sector
	send := func() error {
		if len(c.offs) == 0 {
			return nil
		}
		full <- c
		select {
		case c = <-free:
		case <-ctx.Done():
			return ctx.Err()
		}
		c.data, c.offs, c.at = c.data[:0], c.offs[:0], int64(next)*Sector
		return nil
	}
	err = image.ForEachBlock(src, GrainSize, func(off int64, data []byte) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		if next+vmdkGrainSectors > 1<<32 {
			return errors.New("vmdk: data beyond the format's 2 TiB file limit")
		}
		g := off / GrainSize
		if t := g / vmdkGTEs; t != curGT {
			if err := flushGT(); err != nil {
				return err
			}
			curGT = t
		}
		binary.LittleEndian.PutUint32(table[(g%vmdkGTEs)*4:], uint32(next))
		tableUsed = true
		n := len(c.data)
		c.data = append(c.data, data...)
		c.data = c.data[:n+GrainSize]
		clear(c.data[n+len(data):]) // the last grain may be partial
		c.offs = append(c.offs, off)
		next += vmdkGrainSectors
		if len(c.offs) == chunkGrains {
			return send()
		}
		return nil
	})
	if err == nil {
		err = send()
	}
	close(full)
	<-done
	if writeErr != nil {
		return writeErr
	}
	if err != nil {
		return err
	}
	if err := flushGT(); err != nil {
		return err
	}
	desc := vmdkDescriptor(vmdkCIDFinal(crc), MonolithicSparse, capSectors, vmdkFileName(dst.Name()))
	if _, err := dst.WriteAt(desc, Sector); err != nil {
		return err
	}
	return dst.Truncate(int64(next) * Sector)
}

// StreamStats describes a written streamOptimized VMDK.
type StreamStats struct {
	Size   int64 // file bytes
	Grains int64 // non-zero grains stored
}

// vmdkGrainJob is one grain on its way through the compression pipeline.
type vmdkGrainJob struct {
	grain int64  // grain index
	in    []byte // GrainSize bytes
	out   []byte // marker + zlib stream + padding to a sector
	done  chan struct{}
}

// WriteStream writes a streamOptimized VMDK of virtual size size
// (>= src.Size()) to w, in order.
func WriteStream(ctx context.Context, w io.Writer, fileName string, src image.Source, size int64, workers int) (StreamStats, error) {
	var st StreamStats
	if size < src.Size() {
		return st, fmt.Errorf("vmdk: virtual size %d is smaller than the source (%d bytes)", size, src.Size())
	}
	capSectors, err := vmdkCapacity(size)
	if err != nil {
		return st, err
	}
	if workers <= 0 {
		workers = runtime.NumCPU()
	}
	grains := (capSectors + vmdkGrainSectors - 1) / vmdkGrainSectors
	numGTs := max(1, (grains+vmdkGTEs-1)/vmdkGTEs)
	gdSectors := (numGTs*4 + Sector - 1) / Sector

	// The descriptor precedes the grains, so the content CID needs a
	// first pass (cheap next to compression).
	cid, err := vmdkContentCID(ctx, src)
	if err != nil {
		return st, err
	}
	h := vmdkHeader{
		Version: 3, Flags: vmdkFlagNewline | vmdkFlagCompress | vmdkFlagMarkers,
		Capacity: capSectors, GrainSize: vmdkGrainSectors,
		DescOffset: 1, DescSize: vmdkDescSectors,
		NumGTEsPerGT: vmdkGTEs, GDOffset: vmdkGDAtEnd, OverHead: vmdkStreamOver,
		CompressAlgor: vmdkCompressDeflate,
	}
	var pos uint64 // sectors written
	put := func(b []byte) error {
		if _, err := w.Write(b); err != nil {
			return err
		}
		pos += uint64(len(b)) / Sector
		return nil
	}
	if err := put(h.marshal()); err != nil {
		return st, err
	}
	if err := put(vmdkDescriptor(cid, StreamOptimized, capSectors, fileName)); err != nil {
		return st, err
	}
	if err := put(make([]byte, (vmdkStreamOver-pos)*Sector)); err != nil {
		return st, err
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	depth := 2*workers + 4
	free := make(chan *vmdkGrainJob, depth)
	for i := 0; i < depth; i++ {
		free <- &vmdkGrainJob{in: make([]byte, GrainSize), done: make(chan struct{}, 1)}
	}
	jobs := make(chan *vmdkGrainJob, depth)
	order := make(chan *vmdkGrainJob, depth)
	var wg sync.WaitGroup
	var readErr error
	wg.Add(1)
	go func() { // reader: the non-zero grains, in order
		defer wg.Done()
		defer close(order)
		defer close(jobs)
		readErr = image.ForEachBlock(src, GrainSize, func(off int64, data []byte) error {
			if err := ctx.Err(); err != nil {
				return err
			}
			var j *vmdkGrainJob
			select {
			case j = <-free:
			case <-ctx.Done():
				return ctx.Err()
			}
			j.grain = off / GrainSize
			n := copy(j.in, data)
			clear(j.in[n:])
			select {
			case order <- j:
			case <-ctx.Done():
				return ctx.Err()
			}
			select {
			case jobs <- j:
			case <-ctx.Done():
				return ctx.Err()
			}
			return nil
		})
	}()
	for i := 0; i < workers; i++ {
		wg.Add(1)
		go func() { // compressors
			defer wg.Done()
			d := deflate.NewEncoder()
			for j := range jobs {
				out := j.out[:0]
				out = binary.LittleEndian.AppendUint64(out, uint64(j.grain)*vmdkGrainSectors)
				out = binary.LittleEndian.AppendUint32(out, 0)
				out = d.Compress(out, j.in)
				binary.LittleEndian.PutUint32(out[8:], uint32(len(out)-12))
				for len(out)%Sector != 0 {
					out = append(out, 0)
				}
				j.out = out
				j.done <- struct{}{}
			}
		}()
	}

	gd := make([]uint32, numGTs)
	table := make([]byte, vmdkGTEs*4)
	curGT := int64(-1)
	tableUsed := false
	flushGT := func() error {
		if !tableUsed {
			return nil
		}
		if err := put(vmdkMarker(vmdkGTSectors, vmdkMarkerGT)); err != nil {
			return err
		}
		gd[curGT] = uint32(pos)
		if err := put(table); err != nil {
			return err
		}
		clear(table)
		tableUsed = false
		return nil
	}
	writeErr := func() error {
		for j := range order {
			select {
			case <-j.done:
			case <-ctx.Done():
				return ctx.Err()
			}
			if pos+uint64(len(j.out))/Sector+vmdkGTSectors+1 > 1<<32 {
				return errors.New("vmdk: compressed data beyond the format's 2 TiB file limit")
			}
			if t := j.grain / vmdkGTEs; t != curGT {
				if err := flushGT(); err != nil {
					return err
				}
				curGT = t
			}
			binary.LittleEndian.PutUint32(table[(j.grain%vmdkGTEs)*4:], uint32(pos))
			tableUsed = true
			if err := put(j.out); err != nil {
				return err
			}
			st.Grains++
			free <- j
		}
		return nil
	}()
	if writeErr != nil {
		cancel()
	}
	wg.Wait()
	if writeErr != nil {
		return st, writeErr
	}
	if readErr != nil {
		return st, readErr
	}
	if err := ctx.Err(); err != nil {
		return st, err
	}
	if err := flushGT(); err != nil {
		return st, err
	}
	if err := put(vmdkMarker(gdSectors, vmdkMarkerGD)); err != nil {
		return st, err
	}
	gdAt := pos
	gdBuf := make([]byte, gdSectors*Sector)
	for i, s := range gd {
		binary.LittleEndian.PutUint32(gdBuf[i*4:], s)
	}
	if err := put(gdBuf); err != nil {
		return st, err
	}
	if err := put(vmdkMarker(1, vmdkMarkerFooter)); err != nil {
		return st, err
	}
	h.GDOffset = gdAt
	if err := put(h.marshal()); err != nil {
		return st, err
	}
	if err := put(vmdkMarker(0, vmdkMarkerEOS)); err != nil {
		return st, err
	}
	st.Size = int64(pos) * Sector
	return st, nil
}
