package fat32

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path"
	"sort"
	"time"
)

// Options are the volume-wide settings of Write.
type Options struct {
	// VolumeID is the volume serial number, shown as XXXX-XXXX.
	VolumeID uint32
	// Label is the volume label: at most 11 printable ASCII characters,
	// upper-cased by Write. Empty means "NO NAME" (the boot sector's
	// default), and then the root directory gets no label entry.
	Label string
	// ModTime is the timestamp of every entry, stored as UTC. The zero
	// time means 1980-01-01 00:00:00.
	ModTime time.Time
	// HiddenSectors is the partition's start LBA, recorded in the BPB.
	HiddenSectors uint32
}

// copyBufSize is the unit in which file content is written; a multiple of
// every cluster size.
const copyBufSize = 1 << 20

// Write formats a FAT32 filesystem of exactly size bytes at byte offset of
// w and fills it with the tree. It writes the reserved area, both FATs and
// every cluster the tree uses (whole clusters, zero-padded), and nothing
// else, so a sparse image file stays sparse. If w is a regular file shorter
// than offset+size, it is extended (with a hole) to that length first.
//
// Write returns an error when size is too small for FAT32 (see MinSize),
// the label is invalid, a host file cannot be read or has a size FAT32
// cannot hold, or the tree does not fit. Everything but reading host files
// is checked before the first byte is written.
func (b *Builder) Write(w io.WriterAt, offset, size int64, opts Options) error {
	if offset < 0 || offset > math.MaxInt64-size {
		return fmt.Errorf("fat32: invalid offset %d", offset)
	}
	g, err := newGeometry(size)
	if err != nil {
		return err
	}
	label, err := labelName(opts.Label)
	if err != nil {
		return err
	}
	var rootLabel *shortName
	if label != makeShort("NO NAME", "") {
		rootLabel = &label
	}
	p, err := b.plan(g, rootLabel != nil)
	if err != nil {
		return err
	}
	if err := extend(w, offset+size); err != nil {
		return err
	}
	ts := fatStamp(opts.ModTime)
	buf := make([]byte, copyBufSize)
	for _, f := range p.files {
		if f.size > 0 {
			if err := writeFile(w, offset+g.clusterOffset(f.first), f, g.clusterSize(), buf); err != nil {
				return err
			}
		}
	}
	for _, d := range p.dirs {
		if _, err := w.WriteAt(d.encode(g.clusterSize(), rootLabel, ts), offset+g.clusterOffset(d.first)); err != nil {
			return fmt.Errorf("fat32: writing directory %q: %w", "/"+d.path, err)
		}
	}
	if err := p.writeFATs(w, offset, g, buf); err != nil {
		return err
	}
	// The boot sector goes last, so an interrupted Write into a blank
	// region does not leave a half-made filesystem that looks valid.
	free, last := g.clusters-p.used, p.used+1
	if _, err := w.WriteAt(g.reservedArea(opts.VolumeID, label, opts.HiddenSectors, free, last), offset); err != nil {
		return fmt.Errorf("fat32: writing boot sector: %w", err)
	}
	return nil
}

// plan is the tree laid out on disk.
type plan struct {
	dirs  []*dirPlan // the root first, then depth-first in name order
	files []*item    // depth-first in name order
	ends  []uint32   // the last cluster of every chain, ascending
	used  uint32     // clusters allocated, numbered 2..used+1
}

// plan names every entry, reads the host files' sizes and allocates
// clusters: first every directory, then every non-empty file, each one
// contiguous, in the order of p.dirs and p.files.
func (b *Builder) plan(g geometry, hasLabel bool) (*plan, error) {
	p := &plan{}
	if _, err := p.addDir(b.root, "", nil); err != nil {
		return nil, err
	}
	cs := uint64(g.clusterSize())
	next := uint64(2)
	alloc := func(n uint64) uint32 {
		first := next
		next += n
		p.ends = append(p.ends, uint32(next-1))
		return uint32(first)
	}
	for _, d := range p.dirs {
		d.entries = d.countEntries(hasLabel)
		if d.entries > maxDirEntries {
			return nil, fmt.Errorf("fat32: directory %q needs %d entries, more than FAT's limit of %d", "/"+d.path, d.entries, maxDirEntries)
		}
		n := max(1, (uint64(d.entries)*dirEntrySize+cs-1)/cs)
		d.nClus = uint32(n)
		d.first = alloc(n)
	}
	for _, f := range p.files {
		if f.size > 0 {
			n := (uint64(f.size) + cs - 1) / cs
			f.nClus = uint32(n)
			f.first = alloc(n)
		}
	}
	if used := next - 2; used > uint64(g.clusters) {
		return nil, fmt.Errorf("fat32: content does not fit: it needs %d clusters of %d bytes (%d bytes), the filesystem has %d (%d bytes)",
			used, cs, used*cs, g.clusters, uint64(g.clusters)*cs)
	}
	p.used = uint32(next - 2)
	return p, nil
}

// addDir adds the directory n (at path dir, "" for the root) and, depth
// first, everything below it.
func (p *plan) addDir(n *node, dir string, parent *dirPlan) (*dirPlan, error) {
	d := &dirPlan{path: dir, parent: parent}
	p.dirs = append(p.dirs, d)
	children := make([]*node, 0, len(n.children))
	for _, c := range n.children {
		children = append(children, c)
	}
	sort.Slice(children, func(i, j int) bool { return children[i].name < children[j].name })
	names := make([]string, len(children))
	for i, c := range children {
		names[i] = c.name
	}
	dnames, err := assignShortNames(names)
	if err != nil {
		return nil, fmt.Errorf("fat32: directory %q: %w", "/"+dir, err)
	}
	for i, c := range children {
		it := &item{name: c.name, dname: dnames[i], path: path.Join(dir, c.name)}
		if c.dir {
			if it.dir, err = p.addDir(c, it.path, d); err != nil {
				return nil, err
			}
		} else {
			if err := it.setContent(c); err != nil {
				return nil, err
			}
			p.files = append(p.files, it)
		}
		d.items = append(d.items, it)
	}
	return d, nil
}

// setContent records where a file's content comes from and its size.
func (it *item) setContent(n *node) error {
	size := int64(len(n.data))
	if n.fromHost {
		fi, err := os.Stat(n.hostPath)
		if err != nil {
			return fmt.Errorf("fat32: %q: %w", it.path, err)
		}
		if !fi.Mode().IsRegular() {
			return fmt.Errorf("fat32: %q: host path %q is not a regular file", it.path, n.hostPath)
		}
		size = fi.Size()
	}
	if size > MaxFileSize {
		return fmt.Errorf("fat32: %q: %d bytes is larger than the FAT32 file size limit of %d bytes", it.path, size, int64(MaxFileSize))
	}
	it.hostPath, it.fromHost, it.data, it.size = n.hostPath, n.fromHost, n.data, uint32(size)
	return nil
}

// extend makes a regular file at least end bytes long, so that the whole
// filesystem exists even though Write skips its unused clusters.
func extend(w io.WriterAt, end int64) error {
	f, ok := w.(interface {
		Stat() (os.FileInfo, error)
		Truncate(int64) error
	})
	if !ok {
		return nil
	}
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() || fi.Size() >= end {
		return nil
	}
	if err := f.Truncate(end); err != nil {
		return fmt.Errorf("fat32: extending image to %d bytes: %w", end, err)
	}
	return nil
}

// writeFile writes f's content in whole clusters from off, the tail of the
// last cluster zeroed. A host file must still have the size plan saw.
func writeFile(w io.WriterAt, off int64, f *item, clusterSize int64, buf []byte) error {
	var r io.Reader = bytes.NewReader(f.data)
	if f.fromHost {
		h, err := os.Open(f.hostPath)
		if err != nil {
			return fmt.Errorf("fat32: %q: %w", f.path, err)
		}
		defer h.Close()
		r = h
	}
	changed := fmt.Errorf("fat32: %q: host file %q changed size while being written", f.path, f.hostPath)
	for left := int64(f.size); left > 0; {
		n := min(left, int64(len(buf)))
		if _, err := io.ReadFull(r, buf[:n]); err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return changed
			}
			return fmt.Errorf("fat32: %q: reading %q: %w", f.path, f.hostPath, err)
		}
		padded := (n + clusterSize - 1) / clusterSize * clusterSize
		clear(buf[n:padded])
		if _, err := w.WriteAt(buf[:padded], off); err != nil {
			return fmt.Errorf("fat32: writing %q: %w", f.path, err)
		}
		off += padded
		left -= n
	}
	if f.fromHost {
		var one [1]byte
		switch _, err := io.ReadFull(r, one[:]); {
		case err == nil:
			return changed
		case !errors.Is(err, io.EOF):
			return fmt.Errorf("fat32: %q: reading %q: %w", f.path, f.hostPath, err)
		}
	}
	return nil
}

// writeFATs writes both FATs in full, a chunk at a time (a FAT can be
// hundreds of MiB): the two reserved entries, one contiguous chain per
// directory and file, and zeros (free) for every other cluster.
func (p *plan) writeFATs(w io.WriterAt, offset int64, g geometry, buf []byte) error {
	const perChunk = copyBufSize / 4
	total := uint64(g.fatSectors) * sectorSize / 4
	firstFree := uint64(p.used) + 2
	ends := p.ends
	for start := uint64(0); start < total; start += perChunk {
		n := min(perChunk, total-start)
		chunk := buf[:n*4]
		for i := range n {
			c := start + i
			var v uint32
			switch {
			case c == 0:
				v = 0x0FFFFF00 | mediaFixed
			case c == 1:
				v = eocMark // also: clean shutdown, no I/O errors
			case c < firstFree:
				v = uint32(c + 1)
				if uint64(ends[0]) == c {
					v = eocMark
					ends = ends[1:]
				}
			}
			binary.LittleEndian.PutUint32(chunk[i*4:], v)
		}
		for k := range numFATs {
			if _, err := w.WriteAt(chunk, offset+g.fatOffset(k)+int64(start)*4); err != nil {
				return fmt.Errorf("fat32: writing FAT: %w", err)
			}
		}
	}
	return nil
}
