// Package qcow2 writes and reads QEMU's qcow2 format
// (docs/interop/qcow2.txt in QEMU). Write makes version 3 files, plain or
// with compressed clusters, optionally as an overlay on a backing file;
// Open reads versions 2 and 3 as a virtual disk.
//
// It deliberately does not read a backing chain (an image with a backing
// file is ErrUnsupported: boot tests hand overlays to QEMU, not to Kiln),
// encryption, external data files, extended L2 entries, zstd clusters,
// snapshots or bitmaps, and it never runs qemu-img.
//
// The writer is in write.go, the reader in read.go.
//
// Layout of a written file, in host clusters:
//
//	header | data clusters, in guest order | L2 tables | L1 | refcount table | refcount blocks | [tail]
//
// Data streams out as it is read; the L2 tables and the refcounts stay in
// memory (8 bytes per guest cluster, 2 per host cluster) and are written at
// the end, when their sizes are known.
//
// Compressed clusters (raw deflate) are packed back to back at byte
// granularity, as qemu-img does, and may run over into the next host
// cluster when it is free. Each host cluster's refcount is the number of
// compressed clusters that use a sector of it. The last, partly filled
// cluster of compressed data (the tail) goes after the metadata when it can,
// so the file ends with the data instead of padding it to a cluster.
package qcow2

import (
	"bytes"
	"compress/flate"
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"runtime"
	"sync"

	"github.com/kiln-build/kiln/formats/image"
)

const (
	qcow2Magic       = 0x514649fb // "QFI\xfb"
	qcow2ClusterBits = 16         // 64 KiB clusters, as qemu-img
	qcow2HeaderLen   = 112        // v3 header with the compression type byte, padded to 8

	qcow2Copied     = uint64(1) << 63 // L1/L2: refcount is exactly 1
	qcow2Compressed = uint64(1) << 62 // L2: compressed cluster descriptor
	qcow2ZeroFlag   = uint64(1)       // L2 (v3): reads as zeros
	qcow2OffsetMask = uint64(0x00fffffffffffe00)

	// qcow2MaxL1 is qemu's limit on the L1 table: 32 MiB of entries.
	qcow2MaxL1 = 32 << 20 / 8

	// qcow2Level is the deflate level of compressed clusters. Go's 32 KiB
	// window (qemu deflates with a 4 KiB one, and inflates a whole cluster
	// in one call, so any distance within it decodes) makes level 5 give
	// files 3-6% smaller than qemu-img convert -c, within 0.6% of level 6
	// (qemu's) for a quarter less CPU.
	qcow2Level = 5
)

// Write writes src as a qcow2 version 3 image to dst (created/truncated
// by the caller; written at offsets from 0): 64 KiB clusters, 16-bit
// refcounts; with o.BackingFile an overlay whose unwritten clusters read from
// the backing file (all-zero source clusters are not written, so they too
// read from it). Only the data of src is visited; all-zero
// clusters stay unallocated. With o.Compress, clusters are deflated on
// o.Workers goroutines; the output is the same whatever the number of
// workers. A virtual size that is not a multiple of 512 is rounded up, as
// qemu-img does.
func Write(ctx context.Context, dst *os.File, src image.Source, o image.Options) error {
	return qcow2Write(ctx, dst, src, o, qcow2ClusterBits)
}

// qcow2Write is Write with any cluster size (tests use small ones).
func qcow2Write(ctx context.Context, dst *os.File, src image.Source, o image.Options, cbits uint) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	w, err := newQCOW2Writer(dst, src.Size(), cbits)
	if err != nil {
		return err
	}
	// Over an existing file, start from an empty one: a longer file would
	// keep its tail. (Only then: on ext4, truncating to zero makes the
	// close flush the file, see vmdk.StartFile.)
	if fi, err := dst.Stat(); err != nil {
		return err
	} else if fi.Size() > 0 {
		if err := dst.Truncate(0); err != nil {
			return err
		}
	}
	if o.BackingFile != "" {
		if len(o.BackingFile) > 1023 || len(o.BackingFormat) > 16 || qcow2HeaderLen+8+len(o.BackingFormat)+8+len(o.BackingFile) > int(w.csize) {
			return fmt.Errorf("qcow2: backing file name %q too long", o.BackingFile)
		}
		w.backingFile, w.backingFormat = o.BackingFile, o.BackingFormat
	}
	if err := w.copyData(ctx, src, o); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return w.finish()
}

type qcow2Writer struct {
	dst *os.File
	// backingFile and backingFormat make an overlay (see image.Options).
	backingFile, backingFormat string
	cbits                      uint
	csize                      int64
	size                       int64      // virtual size
	l2                         [][]uint64 // L2 tables by L1 index; nil: not allocated
	refs                       []uint16   // refcount of each host cluster allocated so far

	// The open cluster of compressed data: its bytes, its host offset (-1
	// while it may still move), the chunks that start in it, and the chunk
	// that runs into it from the cluster before (strad.n == 0 if none).
	cur      []byte
	curPos   int64
	curList  []qcow2Chunk
	strad    qcow2Chunk
	stradBuf []byte
}

// qcow2Chunk is one compressed cluster: its guest cluster index, its offset
// (in the open cluster, or in the file for a straddling chunk) and length.
type qcow2Chunk struct{ guest, off, n int64 }

func newQCOW2Writer(dst *os.File, size int64, cbits uint) (*qcow2Writer, error) {
	if size < 0 || size > 1<<56 {
		return nil, fmt.Errorf("qcow2: virtual size %d out of range", size)
	}
	size = (size + 511) &^ 511
	csize := int64(1) << cbits
	cover := csize * (csize / 8) // guest bytes mapped by one L2 table
	l1 := (size + cover - 1) / cover
	if l1 > qcow2MaxL1 {
		return nil, fmt.Errorf("qcow2: virtual size %d too large for %d-byte clusters", size, csize)
	}
	w := &qcow2Writer{dst: dst, cbits: cbits, csize: csize, size: size, l2: make([][]uint64, l1), curPos: -1}
	w.refs = append(w.refs, 1) // the header
	return w, nil
}

// next is the offset of the first host cluster not allocated yet.
func (w *qcow2Writer) next() int64 { return int64(len(w.refs)) << w.cbits }

// alloc allocates n host clusters (refcount 0) and returns the first's offset.
func (w *qcow2Writer) alloc(n int64) int64 {
	off := w.next()
	for ; n > 0; n-- {
		w.refs = append(w.refs, 0)
	}
	return off
}

func (w *qcow2Writer) setL2(guest int64, entry uint64) {
	per := w.csize / 8
	t := w.l2[guest/per]
	if t == nil {
		t = make([]uint64, per)
		w.l2[guest/per] = t
	}
	t[guest%per] = entry
}

// putRaw stores guest cluster guest uncompressed in a new host cluster.
func (w *qcow2Writer) putRaw(guest int64, data []byte) error {
	host := w.alloc(1)
	w.refs[host>>w.cbits] = 1
	w.setL2(guest, uint64(host)|qcow2Copied)
	_, err := w.dst.WriteAt(data, host)
	return err
}

// sectors is the compressed descriptor's count of 512-byte sectors after
// the one holding off.
func qcow2Sectors(off, n int64) int64 { return (off+n-1)>>9 - off>>9 }

func (w *qcow2Writer) compressedEntry(off, n int64) uint64 {
	x := 62 - (w.cbits - 8)
	return qcow2Compressed | uint64(qcow2Sectors(off, n))<<x | uint64(off)
}

// addRefs adds delta to the refcount of every host cluster holding a sector
// of the compressed data at off (what qemu-img check counts).
func (w *qcow2Writer) addRefs(off, n int64, delta int) {
	first := off &^ 511
	end := first + (qcow2Sectors(off, n)+1)*512
	for c := first >> w.cbits; c <= (end-1)>>w.cbits; c++ {
		w.refs[c] = uint16(int(w.refs[c]) + delta)
	}
}

// putCompressed stores guest cluster guest as the compressed bytes b
// (shorter than a cluster).
func (w *qcow2Writer) putCompressed(guest int64, b []byte) error {
	n, used := int64(len(b)), int64(len(w.cur))
	// A refcount is 16 bits: cap the chunks per cluster (unreachable with
	// real deflate output, which is at least a few bytes).
	if used+n <= w.csize && len(w.curList) < 1<<15 {
		w.curList = append(w.curList, qcow2Chunk{guest, used, n})
		w.cur = append(w.cur, b...)
		return nil
	}
	if w.curPos < 0 || w.curPos+w.csize == w.next() {
		// The next host cluster is free: run over into it.
		if w.curPos < 0 {
			w.curPos = w.alloc(1)
		}
		start, head := w.curPos+used, w.csize-used
		w.cur = append(w.cur, b[:head]...)
		if err := w.flushCur(); err != nil {
			return err
		}
		w.curPos = w.alloc(1)
		w.strad = qcow2Chunk{guest, start, n}
		w.stradBuf = append(w.stradBuf[:0], b...)
		w.setL2(guest, w.compressedEntry(start, n))
		w.addRefs(start, n, +1)
		w.cur = append(w.cur[:0], b[head:]...)
		return nil
	}
	// A raw cluster took the next host cluster: leave the rest of this one
	// (qemu-img does the same).
	if err := w.flushCur(); err != nil {
		return err
	}
	w.curPos, w.strad = -1, qcow2Chunk{}
	w.curList = append(w.curList, qcow2Chunk{guest, 0, n})
	w.cur = append(w.cur, b...)
	return nil
}

// flushCur maps the chunks of the open compressed cluster, placed at
// curPos, and writes it.
func (w *qcow2Writer) flushCur() error {
	for _, c := range w.curList {
		w.setL2(c.guest, w.compressedEntry(w.curPos+c.off, c.n))
		w.addRefs(w.curPos+c.off, c.n, +1)
	}
	_, err := w.dst.WriteAt(w.cur, w.curPos)
	w.cur, w.curList = w.cur[:0], w.curList[:0]
	return err
}

// tail takes the open compressed cluster out of the stream when it can go
// after the metadata, and returns its bytes and chunks (offsets in it).
func (w *qcow2Writer) tail() ([]byte, []qcow2Chunk, error) {
	if len(w.cur) == 0 {
		return nil, nil, nil
	}
	if w.curPos < 0 {
		return w.cur, w.curList, nil
	}
	// Anchored by a straddling chunk. If the cluster is the last one, move
	// that chunk too when the bytes it leaves behind are fewer than the
	// padding the cluster would need.
	head := w.csize - w.strad.off&(w.csize-1)
	if w.strad.n == 0 || w.curPos+w.csize != w.next() || head >= w.csize-int64(len(w.cur)) {
		return nil, nil, w.flushCur()
	}
	w.addRefs(w.strad.off, w.strad.n, -1)
	w.refs = w.refs[:len(w.refs)-1] // the open cluster, now unused
	inCur := w.strad.n - head
	buf := append(append([]byte(nil), w.stradBuf...), w.cur[inCur:]...)
	list := []qcow2Chunk{{w.strad.guest, 0, w.strad.n}}
	for _, c := range w.curList {
		list = append(list, qcow2Chunk{c.guest, c.off - inCur + w.strad.n, c.n})
	}
	return buf, list, nil
}

// finish writes the metadata and the header.
func (w *qcow2Writer) finish() error {
	tail, tailList, err := w.tail()
	if err != nil {
		return err
	}
	for _, c := range tailList {
		w.setL2(c.guest, 0) // make sure its L2 table exists
	}
	l2Pos := make([]int64, len(w.l2))
	for i, t := range w.l2 {
		if t != nil {
			l2Pos[i] = w.alloc(1)
			w.refs[l2Pos[i]>>w.cbits] = 1
		}
	}
	ceil := func(a, b int64) int64 { return (a + b - 1) / b }
	l1c := ceil(int64(len(w.l2))*8, w.csize)
	tailc := ceil(int64(len(tail)), w.csize)
	// The refcount blocks count themselves and the table that lists them.
	var rt, rb int64
	for {
		total := int64(len(w.refs)) + l1c + rt + rb + tailc
		nrb := ceil(total, w.csize/2)
		nrt := ceil(nrb*8, w.csize)
		if nrb == rb && nrt == rt {
			break
		}
		rb, rt = nrb, nrt
	}
	meta := func(n int64) int64 {
		off := w.alloc(n)
		for i := range n {
			w.refs[off>>w.cbits+i] = 1
		}
		return off
	}
	l1Pos, rtPos, rbPos := meta(l1c), meta(rt), meta(rb)
	tailPos := w.alloc(tailc)
	for _, c := range tailList {
		w.setL2(c.guest, w.compressedEntry(tailPos+c.off, c.n))
		w.addRefs(tailPos+c.off, c.n, +1)
	}

	be := binary.BigEndian
	buf := make([]byte, w.csize)
	for i, t := range w.l2 {
		if t == nil {
			continue
		}
		for j, e := range t {
			be.PutUint64(buf[8*j:], e)
		}
		if _, err := w.dst.WriteAt(buf, l2Pos[i]); err != nil {
			return err
		}
	}
	table := func(n int64, put func(b []byte)) []byte {
		b := make([]byte, n*w.csize)
		put(b)
		return b
	}
	writes := []struct {
		b   []byte
		off int64
	}{
		{table(l1c, func(b []byte) {
			for i, p := range l2Pos {
				if p != 0 {
					be.PutUint64(b[8*i:], uint64(p)|qcow2Copied)
				}
			}
		}), l1Pos},
		{table(rt, func(b []byte) {
			for i := range rb {
				be.PutUint64(b[8*i:], uint64(rbPos+i*w.csize))
			}
		}), rtPos},
		{table(rb, func(b []byte) {
			for i, r := range w.refs {
				be.PutUint16(b[2*i:], r)
			}
		}), rbPos},
		{tail, tailPos},
		{w.header(l1Pos, rtPos, rt), 0},
	}
	for _, wr := range writes {
		if _, err := w.dst.WriteAt(wr.b, wr.off); err != nil {
			return err
		}
	}
	return nil
}

func (w *qcow2Writer) header(l1Pos, rtPos, rt int64) []byte {
	be := binary.BigEndian
	h := make([]byte, qcow2HeaderLen+8) // + the end of the header extensions
	if w.backingFormat != "" {
		// The backing file format extension (0xe2792aca), padded to 8
		// bytes, goes before the end marker.
		ext := make([]byte, 8+(len(w.backingFormat)+7)&^7)
		be.PutUint32(ext[0:], 0xe2792aca)
		be.PutUint32(ext[4:], uint32(len(w.backingFormat)))
		copy(ext[8:], w.backingFormat)
		h = append(h[:qcow2HeaderLen], append(ext, make([]byte, 8)...)...)
	}
	be.PutUint32(h[0:], qcow2Magic)
	be.PutUint32(h[4:], 3)
	be.PutUint32(h[20:], uint32(w.cbits))
	be.PutUint64(h[24:], uint64(w.size))
	be.PutUint32(h[36:], uint32(len(w.l2)))
	if len(w.l2) > 0 {
		be.PutUint64(h[40:], uint64(l1Pos))
	}
	be.PutUint64(h[48:], uint64(rtPos))
	be.PutUint32(h[56:], uint32(rt))
	be.PutUint32(h[96:], 4) // refcount_order: 16-bit refcounts
	be.PutUint32(h[100:], qcow2HeaderLen)
	if w.backingFile != "" {
		be.PutUint64(h[8:], uint64(len(h)))
		be.PutUint32(h[16:], uint32(len(w.backingFile)))
		h = append(h, w.backingFile...)
	}
	return h // h[104] = 0: zlib compression
}

// qcow2Job is one guest cluster on its way from the reader to the file.
type qcow2Job struct {
	guest int64
	in    []byte // the cluster, zero-padded to a full one
	out   bytes.Buffer
	raw   bool // store in uncompressed
	done  chan struct{}
}

// copyData stores the data clusters of src. Reading, compressing and
// writing overlap: the calling goroutine reads, o.Workers goroutines deflate
// (with o.Compress) and one goroutine places the clusters in guest order, so
// the file does not depend on scheduling.
func (w *qcow2Writer) copyData(ctx context.Context, src image.Source, o image.Options) error {
	workers := o.Workers
	if workers <= 0 {
		workers = runtime.NumCPU()
	}
	workers = min(workers, 256) // bounds the memory in flight
	if !o.Compress {
		workers = 0
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	n := 4*workers + 16 // clusters in flight
	free := make(chan *qcow2Job, n)
	todo := make(chan *qcow2Job, n)
	ordered := make(chan *qcow2Job, n)
	for range n {
		free <- &qcow2Job{in: make([]byte, w.csize)}
	}
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			zw, _ := flate.NewWriter(nil, qcow2Level)
			for j := range todo {
				if ctx.Err() == nil {
					j.out.Reset()
					zw.Reset(&j.out)
					_, _ = zw.Write(j.in) // a bytes.Buffer does not fail
					_ = zw.Close()
					j.raw = int64(j.out.Len()) >= w.csize
				}
				close(j.done)
			}
		})
	}
	placed := make(chan error, 1)
	go func() {
		err := w.placeAll(ctx, ordered, free)
		if err != nil {
			cancel(err)
		}
		placed <- err
	}()
	err := image.ForEachBlock(src, w.csize, func(off int64, data []byte) error {
		var j *qcow2Job
		select {
		case j = <-free:
		case <-ctx.Done():
			return context.Cause(ctx)
		}
		j.guest = off >> w.cbits
		clear(j.in[copy(j.in, data):])
		j.done = make(chan struct{})
		ordered <- j // never blocks: at most n jobs exist
		if o.Compress {
			todo <- j
		} else {
			j.raw = true
			close(j.done)
		}
		return nil
	})
	close(todo)
	close(ordered)
	if err != nil {
		cancel(err)
	}
	perr := <-placed
	wg.Wait()
	if err == nil {
		err = perr
	}
	return err
}

// placeAll stores the jobs in the order they were read.
func (w *qcow2Writer) placeAll(ctx context.Context, ordered <-chan *qcow2Job, free chan<- *qcow2Job) error {
	for j := range ordered {
		select {
		case <-j.done:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			return context.Cause(ctx)
		}
		var err error
		if j.raw {
			err = w.putRaw(j.guest, j.in)
		} else {
			err = w.putCompressed(j.guest, j.out.Bytes())
		}
		if err != nil {
			return err
		}
		free <- j
	}
	return nil
}
