package vhdx

// Check: the structural rules of a VHDX, checked for Hyper-V.

import (
	"encoding/binary"
	"fmt"
	"os"
	"sort"

	"github.com/kiln-build/kiln/formats/image"
	"github.com/kiln-build/kiln/formats/internal/blocks"
)

// vhdxMaxReported bounds how many problems of one kind Check lists.
const vhdxMaxReported = 10

// Check returns every structural problem of the VHDX at path; none
// means it is sound: the file type identifier, both headers (signature,
// CRC-32C, version, distinct sequence numbers, an empty log inside the
// file), both region tables (signature, CRC-32C, identical, the BAT and
// metadata regions 1 MiB aligned, inside the file, not overlapping), the
// metadata table with its required items and their values, and every BAT
// entry (valid state, payload blocks inside the file, aligned, not
// overlapping). The error is for failing to read the file.
func Check(path string) ([]string, error) { return image.WithFile(path, check) }

// vhdxCopy is one of the two copies of a header or region table: its bytes
// (nil if it is missing or invalid) and what they parse to.
type vhdxCopy[T any] struct {
	raw []byte
	v   T
}

// vhdxCopies reads the two copies of a structure of n bytes at off1 and
// off2 and parses each; a copy beyond the end of the file or that parse
// refuses is reported as a problem of what ("header 2: ...").
func vhdxCopies[T any](read func(n int, off int64) []byte, add func(string, ...any), what string, n int,
	off1, off2 int64, parse func([]byte) (T, string)) [2]vhdxCopy[T] {
	var out [2]vhdxCopy[T]
	for i, off := range []int64{off1, off2} {
		b := read(n, off)
		if b == nil {
			add("%s %d: beyond the end of the file", what, i+1)
			continue
		}
		v, problem := parse(b)
		if problem != "" {
			add("%s %d: %s", what, i+1, problem)
			continue
		}
		out[i] = vhdxCopy[T]{b, v}
	}
	return out
}

func check(f *os.File, fileSize int64) ([]string, error) {
	var problems []string
	add := func(format string, a ...any) { problems = append(problems, fmt.Sprintf(format, a...)) }
	read := func(n int, off int64) []byte {
		b := make([]byte, n)
		if m, _ := f.ReadAt(b, off); m < n {
			return nil
		}
		return b
	}

	if b := read(8, 0); b == nil || string(b) != "vhdxfile" {
		add("file type identifier: no \"vhdxfile\" signature at offset 0")
		if fileSize < vhdxRegion2Off+vhdxRegionSize {
			add("file of %d bytes is too small for a VHDX", fileSize)
			return problems, nil
		}
	}

	// Headers.
	var hs []vhdxHeader
	for _, c := range vhdxCopies(read, add, "header", vhdxHeaderSize, vhdxHeader1Off, vhdxHeader2Off, vhdxParseHeader) {
		if c.raw != nil {
			hs = append(hs, c.v)
		}
	}
	switch {
	case len(hs) == 0:
		add("no valid header")
	case len(hs) == 2 && hs[0].seq == hs[1].seq:
		add("headers 1 and 2 have the same sequence number %d", hs[0].seq)
	}
	var logOff, logLen uint64
	if len(hs) > 0 {
		cur := hs[0]
		if len(hs) == 2 && hs[1].seq > cur.seq {
			cur = hs[1]
		}
		logOff, logLen = cur.logOff, uint64(cur.logLen)
		if cur.logGUID != ([16]byte{}) {
			add("log not empty (LogGuid %s): it must be replayed", vhdxGUIDString(cur.logGUID))
		}
		if cur.logVersion != 0 {
			add("log version %d (want 0)", cur.logVersion)
		}
		if logOff%uint64(blocks.MiB) != 0 || logLen%uint64(blocks.MiB) != 0 || logOff < uint64(blocks.MiB) {
			add("log (%d bytes at %d) not 1 MiB aligned or inside the header section", logLen, logOff)
		}
		if logOff > uint64(fileSize) || logLen > uint64(fileSize)-logOff {
			add("log (%d bytes at %d) beyond the end of the file (%d bytes)", logLen, logOff, fileSize)
		}
	}

	// Region tables.
	var tables [2][]byte
	var regions []vhdxRegion
	for i, c := range vhdxCopies(read, add, "region table", vhdxRegionSize, vhdxRegion1Off, vhdxRegion2Off, vhdxParseRegionTable) {
		tables[i] = c.raw
		if c.raw != nil && regions == nil {
			regions = c.v
		}
	}
	if tables[0] != nil && tables[1] != nil && string(tables[0]) != string(tables[1]) {
		add("the two region tables differ")
	}
	if tables[0] == nil && tables[1] == nil {
		add("no valid region table")
		return problems, nil
	}
	type span struct {
		name     string
		off, len uint64
	}
	spans := []span{{"header section", 0, uint64(blocks.MiB)}}
	if logLen > 0 {
		spans = append(spans, span{"log", logOff, logLen})
	}
	var bat, meta *vhdxRegion
	for i := range regions {
		r := &regions[i]
		name := "region " + vhdxGUIDString(r.guid)
		switch r.guid {
		case vhdxRegionBAT:
			name = "BAT region"
			if bat != nil {
				add("two BAT regions")
			}
			bat = r
		case vhdxRegionMetadata:
			name = "metadata region"
			if meta != nil {
				add("two metadata regions")
			}
			meta = r
		default:
			if r.required {
				add("unknown required region %s", vhdxGUIDString(r.guid))
			}
		}
		if r.off%uint64(blocks.MiB) != 0 || uint64(r.length)%uint64(blocks.MiB) != 0 || r.length == 0 {
			add("%s (%d bytes at %d) not 1 MiB aligned", name, r.length, r.off)
		}
		if r.off > uint64(fileSize) || uint64(r.length) > uint64(fileSize)-r.off {
			add("%s (%d bytes at %d) beyond the end of the file (%d bytes)", name, r.length, r.off, fileSize)
		}
		spans = append(spans, span{name, r.off, uint64(r.length)})
	}
	for i := range spans {
		for j := i + 1; j < len(spans); j++ {
			a, b := spans[i], spans[j]
			if a.off < b.off+b.len && b.off < a.off+a.len {
				add("%s and %s overlap", a.name, b.name)
			}
		}
	}
	if bat == nil {
		add("no BAT region")
	}
	if meta == nil {
		add("no metadata region")
		return problems, nil
	}

	// Metadata.
	mt := read(vhdxMetaTableLen, int64(meta.off))
	if mt == nil {
		add("metadata table beyond the end of the file")
		return problems, nil
	}
	entries, problem := vhdxParseMetaTable(mt)
	if problem != "" {
		add("metadata table: %s", problem)
		return problems, nil
	}
	items := map[[16]byte][]byte{}
	var itemSpans []span
	for _, e := range entries {
		name := "metadata item " + vhdxGUIDString(e.guid)
		var want uint32
		for _, it := range vhdxRequiredItems {
			if it.guid == e.guid && !e.user {
				want, name = it.length, it.name
			}
		}
		if e.length == 0 && e.off == 0 {
			continue // present but empty
		}
		if e.off < vhdxMetaTableLen || uint64(e.off)+uint64(e.length) > uint64(meta.length) || e.length > uint32(blocks.MiB) {
			add("%s (%d bytes at %d) not inside the metadata region past its table", name, e.length, e.off)
			continue
		}
		itemSpans = append(itemSpans, span{name, uint64(e.off), uint64(e.length)})
		if want == 0 {
			if e.required && !(e.guid == vhdxItemParentLoc && !e.user) {
				add("unknown required %s", name)
			}
			continue
		}
		if e.length != want {
			add("%s has %d bytes (want %d)", name, e.length, want)
			continue
		}
		if !e.required {
			add("%s not flagged required", name)
		}
		if items[e.guid] != nil {
			add("%s listed twice", name)
		}
		v := read(int(want), int64(meta.off)+int64(e.off))
		if v == nil {
			add("%s beyond the end of the file", name)
			continue
		}
		items[e.guid] = v
	}
	sort.Slice(itemSpans, func(i, j int) bool { return itemSpans[i].off < itemSpans[j].off })
	for i := 1; i < len(itemSpans); i++ {
		if a, b := itemSpans[i-1], itemSpans[i]; a.off+a.len > b.off {
			add("%s and %s overlap", a.name, b.name)
		}
	}
	for _, it := range vhdxRequiredItems {
		if items[it.guid] == nil {
			add("required metadata item %q missing", it.name)
		}
	}
	var blockSize, logical int64
	var size uint64
	hasParent := false
	if v := items[vhdxItemFileParams]; v != nil {
		blockSize = int64(binary.LittleEndian.Uint32(v))
		fl := binary.LittleEndian.Uint32(v[4:])
		hasParent = fl&2 != 0
		if fl>>2 != 0 {
			add("file parameters: reserved flags %#x set", fl)
		}
		if blockSize < vhdxMinBlock || blockSize > vhdxMaxBlock || blockSize&(blockSize-1) != 0 {
			add("block size %d is not a power of two between 1 MiB and 256 MiB", blockSize)
			blockSize = 0
		}
	}
	if v := items[vhdxItemLogicalSect]; v != nil {
		logical = int64(binary.LittleEndian.Uint32(v))
		if logical != 512 && logical != 4096 {
			add("logical sector size %d (want 512 or 4096)", logical)
			logical = 0
		}
	}
	if v := items[vhdxItemPhysicalSect]; v != nil {
		if p := binary.LittleEndian.Uint32(v); p != 512 && p != 4096 {
			add("physical sector size %d (want 512 or 4096)", p)
		}
	}
	if v := items[vhdxItemDiskSize]; v != nil {
		size = binary.LittleEndian.Uint64(v)
		if size == 0 || size > vhdxMaxSize {
			add("virtual disk size %d (want 1 byte to 64 TiB)", size)
			size = 0
		} else if logical > 0 && size%uint64(logical) != 0 {
			add("virtual disk size %d is not a multiple of the logical sector size %d", size, logical)
		}
	}
	if v := items[vhdxItemPage83]; v != nil && string(v) == string(make([]byte, 16)) {
		add("virtual disk ID (page 83 data) is zero")
	}
	if hasParent {
		add("differencing disk (has a parent): only its own blocks can be checked")
	}
	if bat == nil || blockSize == 0 || logical == 0 || size == 0 {
		return problems, nil
	}

	// BAT.
	g := vhdxShape(int64(size), blockSize, logical)
	if uint64(g.entries)*8 > uint64(bat.length) {
		add("BAT region of %d bytes is too small for %d entries", bat.length, g.entries)
		return problems, nil
	}
	if bat.off > uint64(fileSize) || uint64(g.entries)*8 > uint64(fileSize)-bat.off {
		return problems, nil // reported above as beyond the end of the file
	}
	counts := map[string]int{}
	report := func(kind, format string, a ...any) {
		counts[kind]++
		if counts[kind] <= vhdxMaxReported {
			add(format, a...)
		}
	}
	var blocks []uint64
	const page = 64 << 10
	buf := make([]byte, page)
	for e0 := int64(0); e0 < g.entries; e0 += page / 8 {
		n := min(page/8, g.entries-e0)
		if m, _ := f.ReadAt(buf[:n*8], int64(bat.off)+e0*8); int64(m) < n*8 {
			add("BAT beyond the end of the file")
			break
		}
		for p := e0; p < e0+n; p++ {
			e := binary.LittleEndian.Uint64(buf[(p-e0)*8:])
			state := e & 7
			if (p+1)%(g.chunkRatio+1) == 0 {
				if state != 0 && !hasParent {
					report("bitmap", "BAT entry %d: sector bitmap block in state %d in a file without a parent (want 0)", p, state)
				}
				continue
			}
			i := p - p/(g.chunkRatio+1)
			switch state {
			case vhdxNotPresent, vhdxUndefined, vhdxZero, vhdxUnmapped:
			case vhdxFullyPresent:
				off := e &^ (1<<20 - 1)
				switch {
				case off+uint64(blockSize) > uint64(fileSize):
					report("eof", "block %d (BAT entry %d) at offset %d runs past the end of the file (%d bytes)", i, p, off, fileSize)
				default:
					for _, s := range spans {
						if off < s.off+s.len && s.off < off+uint64(blockSize) {
							report("overlap", "block %d at offset %d overlaps the %s", i, off, s.name)
						}
					}
				}
				blocks = append(blocks, off)
			case vhdxPartiallyPresent:
				if !hasParent {
					report("state", "block %d partially present in a file without a parent", i)
				}
			default:
				report("state", "block %d in reserved state %d", i, state)
			}
		}
	}
	sort.Slice(blocks, func(i, j int) bool { return blocks[i] < blocks[j] })
	for i := 1; i < len(blocks); i++ {
		if blocks[i] < blocks[i-1]+uint64(blockSize) {
			report("blocks", "payload blocks at offsets %d and %d overlap", blocks[i-1], blocks[i])
		}
	}
	for _, kind := range []string{"bitmap", "eof", "overlap", "state", "blocks"} {
		if n := counts[kind]; n > vhdxMaxReported {
			add("... and %d more problems like those (%s)", n-vhdxMaxReported, kind)
		}
	}
	return problems, nil
}
