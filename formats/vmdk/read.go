package vmdk

// The VMDK reader: monolithicSparse and streamOptimized single-file disks.
// Every offset and size read from the file is checked against the file's
// length before use, and everything allocated is bounded by the file's
// length (or a small constant), so a malformed file gives a *image.FormatError
// instead of a panic, a hang or a huge allocation.

import (
	"bytes"
	"compress/flate"
	"compress/zlib"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/kiln-build/kiln/formats/image"
	"github.com/kiln-build/kiln/formats/internal/blocks"
	"github.com/kiln-build/kiln/internal/sparse"
)

const (
	vmdkMaxGrainSectors = 2048    // 1 MiB grains: larger ones are not read
	vmdkMaxGTEs         = 4096    // entries per grain table
	vmdkMaxDescSectors  = 2048    // 1 MiB of descriptor
	vmdkGTCacheMax      = 4096    // grain tables kept in memory
	vmdkMaxCompressed   = 3 << 20 // largest compressed grain accepted
)

func vmdkErr(format string, a ...any) error { return image.Errorf("vmdk", format, a...) }

func vmdkUnsupported(format string, a ...any) error {
	return fmt.Errorf("vmdk: %s: %w", fmt.Sprintf(format, a...), image.ErrUnsupported)
}

// Disk is an open single-file VMDK.
type Disk struct {
	r          io.ReaderAt
	closer     io.Closer
	fileSize   int64
	h          vmdkHeader // the footer's copy for streamOptimized files
	createType string
	size       int64 // virtual bytes
	grainBytes int64
	gd         []uint32
	compressed bool
	zeroGrain  bool // GTE 1 means a zero grain

	mu       sync.Mutex
	gts      map[uint32][]uint32 // grain tables by sector
	inflated image.LastPiece     // the compressed grain read last
}

// Open opens a monolithicSparse or streamOptimized VMDK (a single file
// with an embedded descriptor). Disks split over several files,
// descriptor-only files, delta disks and other createTypes give an error
// wrapping image.ErrUnsupported; a malformed file gives a *image.FormatError.
//
// An extent path in a descriptor that leaves the input's directory (an
// absolute path, or one through "..") is refused before anything else, so
// the error says so: Kiln never opens a file a descriptor names.
func Open(path string) (image.Image, error) {
	return image.Open(path, func(f *os.File, size int64) (*Disk, error) {
		if err := vmdkCheckDescriptorFile(f, size); err != nil {
			return nil, err
		}
		return openAt(f, size, f)
	})
}

// OpenAt reads the metadata of a VMDK held in r (size bytes).
func OpenAt(r io.ReaderAt, size int64) (*Disk, error) { return openAt(r, size, nil) }

// openAt is OpenAt with an image whose Close closes closer, if any.
func openAt(r io.ReaderAt, size int64, closer io.Closer) (*Disk, error) {
	first := make([]byte, Sector)
	n, err := r.ReadAt(first, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	first = first[:n]
	if len(first) < 4 || binary.LittleEndian.Uint32(first) != vmdkMagic {
		return nil, vmdkNotSparse(first)
	}
	if n < Sector {
		return nil, vmdkErr("file of %d bytes is shorter than its header", size)
	}
	h, _ := vmdkParseHeader(first)
	if err := vmdkCheckHeader(&h, size); err != nil {
		return nil, err
	}
	img := &Disk{r: r, closer: closer, fileSize: size, gts: map[uint32][]uint32{}}
	desc, err := img.readDescriptor(&h)
	if err != nil {
		return nil, err
	}
	img.createType = desc
	if h.GDOffset == vmdkGDAtEnd {
		if h, err = vmdkReadFooter(r, size); err != nil {
			return nil, err
		}
		if err := vmdkCheckHeader(&h, size); err != nil {
			return nil, err
		}
		if h.GDOffset == vmdkGDAtEnd {
			return nil, vmdkErr("footer has no grain directory offset")
		}
	}
	img.h = h
	img.size = int64(h.Capacity) * Sector
	img.grainBytes = int64(h.GrainSize) * Sector
	img.compressed = h.Flags&vmdkFlagCompress != 0
	img.zeroGrain = h.Flags&vmdkFlagZeroGrain != 0

	// The grain directory: one entry per grain table.
	perGT := h.GrainSize * uint64(h.NumGTEsPerGT)
	numGTs := (h.Capacity + perGT - 1) / perGT
	if !vmdkInFile(h.GDOffset, numGTs*4, size) {
		return nil, vmdkErr("grain directory (%d entries at sector %d) is beyond the end of the file", numGTs, h.GDOffset)
	}
	raw := make([]byte, numGTs*4)
	if err := image.ReadFull(r, raw, int64(h.GDOffset)*Sector, "vmdk", "grain directory"); err != nil {
		return nil, err
	}
	img.gd = make([]uint32, numGTs)
	used := uint64(0)
	for i := range img.gd {
		img.gd[i] = binary.LittleEndian.Uint32(raw[i*4:])
		if img.gd[i] != 0 {
			used++
		}
	}
	// In a well-formed file every grain table has its own sectors.
	if used*uint64(h.NumGTEsPerGT)*4 > uint64(size) {
		return nil, vmdkErr("%d grain tables cannot fit in a file of %d bytes", used, size)
	}
	return img, nil
}

// vmdkNotSparse explains a file without the sparse extent magic.
func vmdkNotSparse(first []byte) error {
	switch {
	case bytes.HasPrefix(first, []byte("COWD")):
		return vmdkUnsupported("ESX sparse (COWD) extents are not read")
	case bytes.HasPrefix(first, []byte("# Disk DescriptorFile")) || bytes.Contains(first, []byte("createType")):
		ct := vmdkDescValue(string(first), "createType")
		return vmdkUnsupported("descriptor-only VMDK (createType %q): its extents are separate files", ct)
	}
	return vmdkErr("no sparse extent header (bad magic)")
}

// vmdkInFile reports whether n bytes at sector off lie inside the file.
func vmdkInFile(off, n uint64, fileSize int64) bool {
	if off > uint64(fileSize)/Sector {
		return false
	}
	return off*Sector+n <= uint64(fileSize) && n <= uint64(fileSize)
}

func vmdkCheckHeader(h *vmdkHeader, size int64) error {
	if h.Version < 1 || h.Version > 3 {
		return vmdkUnsupported("sparse extent version %d", h.Version)
	}
	if h.Flags&vmdkFlagNewline != 0 && string(h.NewlineChars[:]) != "\n \r\n" {
		return vmdkErr("newline detection bytes are damaged (file transferred in text mode?)")
	}
	if h.GrainSize == 0 || h.GrainSize&(h.GrainSize-1) != 0 {
		return vmdkErr("grain size of %d sectors is not a power of two", h.GrainSize)
	}
	if h.GrainSize > vmdkMaxGrainSectors {
		return vmdkUnsupported("grain size of %d sectors", h.GrainSize)
	}
	if h.NumGTEsPerGT == 0 {
		return vmdkErr("grain tables have no entries")
	}
	if h.NumGTEsPerGT > vmdkMaxGTEs {
		return vmdkUnsupported("%d entries per grain table", h.NumGTEsPerGT)
	}
	if h.Capacity > vmdkMaxSize/Sector {
		return vmdkErr("capacity of %d sectors is beyond Kiln's limit of %d bytes (64 TiB)", h.Capacity, uint64(image.MaxVirtualSize))
	}
	if h.Flags&vmdkFlagCompress != 0 {
		if h.CompressAlgor != vmdkCompressDeflate {
			return vmdkUnsupported("compression algorithm %d", h.CompressAlgor)
		}
		if h.Flags&vmdkFlagMarkers == 0 {
			return vmdkUnsupported("compressed grains without markers")
		}
	}
	if h.GDOffset == vmdkGDAtEnd && h.Flags&vmdkFlagCompress == 0 {
		return vmdkErr("grain directory at the end of an uncompressed extent")
	}
	return nil
}

// readDescriptor checks the embedded descriptor and returns its createType.
func (v *Disk) readDescriptor(h *vmdkHeader) (string, error) {
	if h.DescOffset == 0 || h.DescSize == 0 {
		return "", vmdkUnsupported("sparse extent without an embedded descriptor (part of a multi-file disk)")
	}
	if h.DescSize > vmdkMaxDescSectors {
		return "", vmdkErr("descriptor of %d sectors is too large", h.DescSize)
	}
	if !vmdkInFile(h.DescOffset, h.DescSize*Sector, v.fileSize) {
		return "", vmdkErr("descriptor is beyond the end of the file")
	}
	b := make([]byte, h.DescSize*Sector)
	if err := image.ReadFull(v.r, b, int64(h.DescOffset)*Sector, "vmdk", "descriptor"); err != nil {
		return "", err
	}
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	text := string(b)
	if strings.TrimSpace(text) == "" {
		return "", vmdkUnsupported("sparse extent with an empty descriptor (part of a multi-file disk)")
	}
	ct := vmdkDescValue(text, "createType")
	if ct == "" {
		return "", vmdkErr("descriptor has no createType")
	}
	if err := vmdkCheckExtentPaths(text); err != nil {
		return "", err
	}
	if p := vmdkDescValue(text, "parentCID"); p != "" && !strings.EqualFold(p, "ffffffff") {
		parent := ""
		if hint := vmdkDescValue(text, "parentFileNameHint"); hint != "" {
			parent = fmt.Sprintf(" of %q", hint)
		}
		return "", vmdkUnsupported("delta disk (parentCID %s) on a backing file%s: Kiln reads standalone images only and never opens the file an image names", p, parent)
	}
	switch ct {
	case MonolithicSparse, StreamOptimized:
	default:
		return "", vmdkUnsupported("createType %q", ct)
	}
	extents := 0
	for _, line := range strings.Split(text, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		switch f[0] {
		case "RW", "RDONLY", "NOACCESS":
			extents++
			if len(f) < 3 || f[2] != "SPARSE" {
				return "", vmdkUnsupported("extent %q is not a sparse extent", strings.TrimSpace(line))
			}
		}
	}
	if extents != 1 {
		return "", vmdkUnsupported("%d extents (only single-extent disks are read)", extents)
	}
	return ct, nil
}

// vmdkCheckDescriptorFile reads a descriptor-only VMDK (text) and refuses
// extent paths that leave its directory; other files pass.
func vmdkCheckDescriptorFile(r io.ReaderAt, size int64) error {
	read := func(n int64) ([]byte, error) {
		b := make([]byte, min(size, n))
		m, err := r.ReadAt(b, 0)
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, err
		}
		return b[:m], nil
	}
	b, err := read(Sector)
	if err != nil {
		return err
	}
	if len(b) < 4 || binary.LittleEndian.Uint32(b) == vmdkMagic || !(bytes.HasPrefix(b, []byte("# Disk DescriptorFile")) || bytes.Contains(b, []byte("createType"))) {
		return nil
	}
	if b, err = read(vmdkMaxDescSectors * Sector); err != nil {
		return err
	}
	return vmdkCheckExtentPaths(string(b))
}

// vmdkCheckExtentPaths refuses extent lines whose file lies outside the
// directory of the descriptor: an absolute path or one that climbs out
// with "..". Such a descriptor is hostile (or made for another machine);
// Kiln never follows it, whatever the extent's type.
func vmdkCheckExtentPaths(text string) error {
	for _, line := range strings.Split(text, "\n") {
		f := strings.Fields(line)
		if len(f) < 4 || (f[0] != "RW" && f[0] != "RDONLY" && f[0] != "NOACCESS") {
			continue
		}
		_, rest, ok := strings.Cut(line, "\"")
		name, _, closed := strings.Cut(rest, "\"")
		if !ok || !closed {
			return vmdkErr("extent line %q has no quoted file name", strings.TrimSpace(line))
		}
		if filepath.IsAbs(name) || !filepath.IsLocal(name) {
			return vmdkErr("extent file %q lies outside the directory of the descriptor; refused (Kiln never opens a file a descriptor names outside it)", name)
		}
	}
	return nil
}

// vmdkDescValue returns the value of key=value in a descriptor, unquoted.
func vmdkDescValue(text, key string) string {
	for _, line := range strings.Split(text, "\n") {
		k, v, ok := strings.Cut(line, "=")
		if !ok || strings.TrimSpace(k) != key {
			continue
		}
		v = strings.TrimSpace(v)
		return strings.Trim(v, "\"")
	}
	return ""
}

// vmdkReadFooter reads the footer of a streamOptimized file whose header
// says GD_AT_END: footer marker, footer, end-of-stream marker in the last
// three sectors.
func vmdkReadFooter(r io.ReaderAt, size int64) (vmdkHeader, error) {
	var h vmdkHeader
	if size < 4*Sector {
		return h, vmdkErr("file too short for a footer")
	}
	b := make([]byte, 3*Sector)
	if err := image.ReadFull(r, b, size-3*Sector, "vmdk", "footer"); err != nil {
		return h, err
	}
	le := binary.LittleEndian
	if le.Uint64(b[0:]) != 1 || le.Uint32(b[8:]) != 0 || le.Uint32(b[12:]) != vmdkMarkerFooter {
		return h, vmdkErr("no footer marker before the end of the file")
	}
	eos := b[2*Sector:]
	if le.Uint64(eos[0:]) != 0 || le.Uint32(eos[8:]) != 0 || le.Uint32(eos[12:]) != vmdkMarkerEOS {
		return h, vmdkErr("no end-of-stream marker at the end of the file")
	}
	h, ok := vmdkParseHeader(b[Sector : 2*Sector])
	if !ok {
		return h, vmdkErr("footer has no sparse extent magic")
	}
	return h, nil
}

func (v *Disk) Size() int64    { return v.size }
func (v *Disk) Format() string { return "vmdk" }
func (v *Disk) Subformat() string {
	return v.createType
}

// Compressed reports whether the grains are compressed (as streamOptimized
// grains must be).
func (v *Disk) Compressed() bool { return v.compressed }

func (v *Disk) Close() error {
	if v.closer == nil {
		return nil
	}
	return v.closer.Close()
}

// gt returns grain table i (nil when unallocated).
func (v *Disk) gt(i int64) ([]uint32, error) {
	sec := v.gd[i]
	if sec == 0 {
		return nil, nil
	}
	v.mu.Lock()
	t, ok := v.gts[sec]
	v.mu.Unlock()
	if ok {
		return t, nil
	}
	n := uint64(v.h.NumGTEsPerGT)
	if !vmdkInFile(uint64(sec), n*4, v.fileSize) {
		return nil, vmdkErr("grain table %d (sector %d) is beyond the end of the file", i, sec)
	}
	raw := make([]byte, n*4)
	if err := image.ReadFull(v.r, raw, int64(sec)*Sector, "vmdk", "grain table"); err != nil {
		return nil, err
	}
	t = make([]uint32, n)
	for j := range t {
		t[j] = binary.LittleEndian.Uint32(raw[j*4:])
	}
	v.mu.Lock()
	if len(v.gts) >= vmdkGTCacheMax {
		clear(v.gts)
	}
	v.gts[sec] = t
	v.mu.Unlock()
	return t, nil
}

// gte returns the grain table entry of grain g.
func (v *Disk) gte(g int64) (uint32, error) {
	per := int64(v.h.NumGTEsPerGT)
	t, err := v.gt(g / per)
	if err != nil || t == nil {
		return 0, err
	}
	return t[g%per], nil
}

// allocated reports whether a grain table entry points at data.
func (v *Disk) allocated(e uint32) bool {
	return e != 0 && !(e == 1 && v.zeroGrain)
}

// Extents lists the allocated grains, merged.
func (v *Disk) Extents() ([]sparse.Extent, error) {
	var out []sparse.Extent
	per := int64(v.h.NumGTEsPerGT)
	count := int64(0)
	for i := range v.gd {
		t, err := v.gt(int64(i))
		if err != nil {
			return nil, err
		}
		for j, e := range t {
			if !v.allocated(e) {
				continue
			}
			// Each stored grain takes at least a sector of its own.
			if count++; count > v.fileSize/Sector {
				return nil, vmdkErr("more allocated grains than the file can hold")
			}
			off := (int64(i)*per + int64(j)) * v.grainBytes
			if off >= v.size {
				continue
			}
			out = blocks.MergeExtent(out, off, min(v.grainBytes, v.size-off))
		}
	}
	return out, nil
}

// ReadAt reads the virtual disk; unallocated grains read as zeros.
func (v *Disk) ReadAt(p []byte, off int64) (int, error) {
	return image.ReadPieces(p, off, v.size, v.grainBytes, "vmdk", v.readGrain)
}

// readGrain fills p from grain g starting at byte in of the grain.
func (v *Disk) readGrain(p []byte, g, in int64) error {
	e, err := v.gte(g)
	if err != nil {
		return err
	}
	if !v.allocated(e) {
		clear(p)
		return nil
	}
	if !v.compressed {
		if !vmdkInFile(uint64(e), uint64(in)+uint64(len(p)), v.fileSize) {
			return vmdkErr("grain %d (sector %d) is beyond the end of the file", g, e)
		}
		return image.ReadFull(v.r, p, int64(e)*Sector+in, "vmdk", "grain")
	}
	data, err := v.inflate(g, e)
	if err != nil {
		return err
	}
	copy(p, data[in:])
	return nil
}

var vmdkInflaters sync.Pool

// inflate returns the decompressed grain g stored at sector e; the result
// is shared and must not be modified.
func (v *Disk) inflate(g int64, e uint32) ([]byte, error) {
	return v.inflated.Get(g, func() ([]byte, error) { return v.inflateGrain(g, e) })
}

// inflateGrain reads and decompresses grain g stored at sector e.
func (v *Disk) inflateGrain(g int64, e uint32) ([]byte, error) {
	var m [12]byte
	if !vmdkInFile(uint64(e), 12, v.fileSize) {
		return nil, vmdkErr("grain %d (sector %d) is beyond the end of the file", g, e)
	}
	if err := image.ReadFull(v.r, m[:], int64(e)*Sector, "vmdk", "grain marker"); err != nil {
		return nil, err
	}
	lba := binary.LittleEndian.Uint64(m[0:])
	clen := binary.LittleEndian.Uint32(m[8:])
	if lba != uint64(g)*v.h.GrainSize {
		return nil, vmdkErr("grain %d: marker says LBA %d, want %d", g, lba, uint64(g)*v.h.GrainSize)
	}
	if clen == 0 || int64(clen) > min(vmdkMaxCompressed, 2*v.grainBytes+4096) {
		return nil, vmdkErr("grain %d: compressed size %d is out of range", g, clen)
	}
	if !vmdkInFile(uint64(e), 12+uint64(clen), v.fileSize) {
		return nil, vmdkErr("grain %d: compressed data runs beyond the end of the file", g)
	}
	comp := make([]byte, clen)
	if err := image.ReadFull(v.r, comp, int64(e)*Sector+12, "vmdk", "compressed grain"); err != nil {
		return nil, err
	}
	out := make([]byte, v.grainBytes)
	n, err := vmdkDecompress(comp, out)
	if err != nil {
		return nil, vmdkErr("grain %d: %v", g, err)
	}
	// The part of the grain inside the disk must be present.
	if need := min(v.grainBytes, v.size-g*v.grainBytes); int64(n) < need {
		return nil, vmdkErr("grain %d decompresses to %d bytes, want %d", g, n, need)
	}
	return out, nil
}

// vmdkDecompress inflates a zlib stream (or, failing a zlib header, a raw
// DEFLATE stream) into out, which it must fit exactly or with room to
// spare; it returns the decompressed length.
func vmdkDecompress(comp, out []byte) (int, error) {
	var rc io.ReadCloser
	isZlib := len(comp) >= 2 && comp[0]&0x0f == 8 && comp[0]>>4 <= 7 && (uint16(comp[0])<<8|uint16(comp[1]))%31 == 0 && comp[1]&0x20 == 0
	br := bytes.NewReader(comp)
	if isZlib {
		if z, ok := vmdkInflaters.Get().(io.ReadCloser); ok {
			if err := z.(zlib.Resetter).Reset(br, nil); err != nil {
				return 0, err
			}
			rc = z
		} else {
			z, err := zlib.NewReader(br)
			if err != nil {
				return 0, err
			}
			rc = z
		}
		defer vmdkInflaters.Put(rc)
	} else {
		rc = flate.NewReader(br)
	}
	n, err := io.ReadFull(rc, out)
	switch {
	case errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF):
		// Shorter than a grain; the caller decides if enough.
	case err != nil:
		return n, err
	default:
		// Exactly a grain: the stream must end here (zlib checks its
		// checksum at the end).
		var one [1]byte
		if m, err := io.ReadFull(rc, one[:]); m > 0 {
			return n, errors.New("decompresses to more than a grain")
		} else if !errors.Is(err, io.EOF) {
			return n, err
		}
	}
	return n, nil
}
