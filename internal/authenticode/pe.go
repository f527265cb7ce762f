// Package authenticode signs PE/COFF images (EFI applications, Linux
// kernels with an EFI stub) the way UEFI Secure Boot checks them, and reads
// the signatures they carry.
//
// Sign computes the Authenticode image digest exactly as EDK2's
// DxeImageVerificationLib does (headers without the checksum and the
// certificate table entry, sections in file order, then the data after
// them), wraps it in a PKCS#7 SignedData with an SpcIndirectDataContent,
// signs it with an RSA key (PKCS#1 v1.5, SHA-256) and writes it as the
// image's only WIN_CERTIFICATE. Signers lists who signed an image: every
// WIN_CERTIFICATE and every nested signature, each with its signer
// certificate's subject and issuer.
//
// It does not decide whether a signature is trusted (the firmware does,
// against its db and dbx), verify certificate chains, or timestamp. Its
// output is judged by sbverify and osslsigncode in the tests.
package authenticode

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sort"
)

// Offsets in the PE/COFF headers (Microsoft PE format specification).
const (
	peOffsetPtr      = 0x3c // e_lfanew in the DOS header
	coffHeaderSize   = 20
	sectionEntrySize = 40
	optChecksum      = 64 // CheckSum, the same in PE32 and PE32+
	optSizeOfHeaders = 60
	certDirIndex     = 4 // IMAGE_DIRECTORY_ENTRY_SECURITY
	magicPE32        = 0x10b
	magicPE32Plus    = 0x20b
)

// image is a parsed PE/COFF file: where the fields Authenticode skips are
// and where the sections' raw data lies.
type image struct {
	data        []byte
	checksumOff int    // offset of the optional header's CheckSum
	certDirOff  int    // offset of the certificate table's data directory entry
	headersSize uint32 // SizeOfHeaders
	certOff     uint32 // the certificate table's file offset (0 when absent)
	certSize    uint32
	sections    []section
}

type section struct {
	offset, size uint32 // PointerToRawData, SizeOfRawData
}

// ErrNotPE is returned for data that is not a PE/COFF image.
var ErrNotPE = errors.New("not a PE/COFF image")

// parse reads the headers of a PE/COFF image.
func parse(data []byte) (*image, error) {
	if len(data) < 0x40 || data[0] != 'M' || data[1] != 'Z' {
		return nil, fmt.Errorf("%w: no MZ header", ErrNotPE)
	}
	pe := int(binary.LittleEndian.Uint32(data[peOffsetPtr:]))
	if pe < 0 || pe+4+coffHeaderSize > len(data) || string(data[pe:pe+4]) != "PE\x00\x00" {
		return nil, fmt.Errorf("%w: no PE signature", ErrNotPE)
	}
	coff := pe + 4
	nsections := int(binary.LittleEndian.Uint16(data[coff+2:]))
	optSize := int(binary.LittleEndian.Uint16(data[coff+16:]))
	opt := coff + coffHeaderSize
	if opt+optSize > len(data) || optSize < 2 {
		return nil, fmt.Errorf("%w: optional header out of bounds", ErrNotPE)
	}
	var dirs, ndirsOff int
	switch binary.LittleEndian.Uint16(data[opt:]) {
	case magicPE32:
		ndirsOff, dirs = 92, 96
	case magicPE32Plus:
		ndirsOff, dirs = 108, 112
	default:
		return nil, fmt.Errorf("%w: unknown optional header magic %#x", ErrNotPE, binary.LittleEndian.Uint16(data[opt:]))
	}
	if optSize < dirs+8*(certDirIndex+1) || binary.LittleEndian.Uint32(data[opt+ndirsOff:]) <= certDirIndex {
		return nil, fmt.Errorf("%w: the optional header has no certificate table entry", ErrNotPE)
	}
	img := &image{
		data:        data,
		checksumOff: opt + optChecksum,
		certDirOff:  opt + dirs + 8*certDirIndex,
		headersSize: binary.LittleEndian.Uint32(data[opt+optSizeOfHeaders:]),
	}
	img.certOff = binary.LittleEndian.Uint32(data[img.certDirOff:])
	img.certSize = binary.LittleEndian.Uint32(data[img.certDirOff+4:])
	if uint64(img.certOff)+uint64(img.certSize) > uint64(len(data)) {
		return nil, fmt.Errorf("%w: the certificate table (%d bytes at %d) runs past the end of the file (%d bytes)", ErrNotPE, img.certSize, img.certOff, len(data))
	}
	if img.certSize > 0 && uint64(img.certOff)+uint64(img.certSize) != uint64(len(data)) {
		return nil, fmt.Errorf("%w: the certificate table is not at the end of the file", ErrNotPE)
	}
	if int(img.headersSize) > len(data) || int(img.headersSize) < img.certDirOff+8 {
		return nil, fmt.Errorf("%w: SizeOfHeaders %d is out of bounds", ErrNotPE, img.headersSize)
	}
	table := opt + optSize
	if table+nsections*sectionEntrySize > len(data) {
		return nil, fmt.Errorf("%w: section table out of bounds", ErrNotPE)
	}
	for i := 0; i < nsections; i++ {
		e := data[table+i*sectionEntrySize:]
		s := section{size: binary.LittleEndian.Uint32(e[16:]), offset: binary.LittleEndian.Uint32(e[20:])}
		if s.size == 0 {
			continue
		}
		if uint64(s.offset)+uint64(s.size) > uint64(len(data)) {
			return nil, fmt.Errorf("%w: section %d (%d bytes at %d) runs past the end of the file", ErrNotPE, i, s.size, s.offset)
		}
		img.sections = append(img.sections, s)
	}
	sort.SliceStable(img.sections, func(i, j int) bool { return img.sections[i].offset < img.sections[j].offset })
	return img, nil
}

// digestRegions returns the byte ranges the Authenticode digest covers, in
// order, as EDK2's DxeImageVerificationLib hashes them.
func (img *image) digestRegions() [][]byte {
	d := img.data
	regions := [][]byte{
		d[:img.checksumOff],
		d[img.checksumOff+4 : img.certDirOff],
		d[img.certDirOff+8 : img.headersSize],
	}
	hashed := uint64(img.headersSize)
	for _, s := range img.sections {
		regions = append(regions, d[s.offset:s.offset+s.size])
		hashed += uint64(s.size)
	}
	end := uint64(len(d)) - uint64(img.certSize)
	if hashed < end {
		regions = append(regions, d[hashed:end])
	}
	return regions
}

// checksum is the PE image checksum (the algorithm of imagehlp's
// CheckSumMappedFile): a 16-bit folded sum of the file's words, skipping
// the CheckSum field, plus the file length.
func checksum(data []byte, checksumOff int) uint32 {
	var sum uint64
	for i := 0; i+1 < len(data); i += 2 {
		if i == checksumOff || i == checksumOff+2 {
			continue
		}
		sum += uint64(binary.LittleEndian.Uint16(data[i:]))
		sum = (sum & 0xffff) + (sum >> 16)
	}
	if len(data)%2 == 1 {
		sum += uint64(data[len(data)-1])
		sum = (sum & 0xffff) + (sum >> 16)
	}
	sum = (sum & 0xffff) + (sum >> 16)
	return uint32(sum) + uint32(len(data))
}
