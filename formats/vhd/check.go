package vhd

import (
	"encoding/binary"
	"fmt"
	"os"

	"github.com/kiln-build/kiln/formats/image"
	"github.com/kiln-build/kiln/formats/internal/blocks"
)

// vhdAzureMinSize is the smallest disk Azure takes.
const vhdAzureMinSize = 20 << 20

// CheckAzure returns every way the file at path breaks Azure's rules for
// an uploaded VHD; none means Azure takes it. The rules: a VHD with a valid
// footer (cookie "conectix", checksum), fixed (not dynamic or
// differencing), its virtual size a multiple of 1 MiB and at least 20 MiB,
// the current size in the footer equal to the file size minus the 512-byte
// footer. The error is for failing to read the file.
func CheckAzure(path string) ([]string, error) { return image.WithFile(path, checkAzure) }

func checkAzure(f *os.File, size int64) ([]string, error) {
	if size < vhdFooterSize {
		return []string{fmt.Sprintf("not a VHD: the file has %d bytes, fewer than a 512-byte footer", size)}, nil
	}
	b := make([]byte, vhdFooterSize)
	if _, err := f.ReadAt(b, size-vhdFooterSize); err != nil {
		return nil, err
	}
	var problems []string
	add := func(format string, a ...any) { problems = append(problems, fmt.Sprintf(format, a...)) }
	ft := vhdParseFooter(b)
	if !ft.cookieOK {
		add("not a VHD: no footer cookie \"conectix\" in the last 512 bytes (truncated, or not a fixed VHD)")
		// Perhaps a dynamic VHD whose footer copy is at the start.
		if _, err := f.ReadAt(b, 0); err == nil && vhdParseFooter(b).cookieOK {
			if t := vhdParseFooter(b).diskType; t != vhdTypeFixed {
				add("disk type %d (%s): Azure takes only fixed VHDs", t, vhdTypeName(t))
			}
		}
		return problems, nil
	}
	if !ft.checksumOK {
		add("footer checksum mismatch (stored %#08x, computed %#08x)",
			binary.BigEndian.Uint32(b[vhdFtChecksum:]), vhdChecksum(b, vhdFtChecksum))
	}
	if v := binary.BigEndian.Uint32(b[vhdFtVersion:]); v != vhdVersion {
		add("footer file format version %#08x (want 0x00010000)", v)
	}
	if ft.diskType != vhdTypeFixed {
		add("disk type %d (%s): Azure takes only fixed VHDs", ft.diskType, vhdTypeName(ft.diskType))
	}
	vsize := ft.curSize
	if vsize%uint64(blocks.MiB) != 0 {
		add("virtual size %d is not a multiple of 1 MiB", vsize)
	}
	if vsize < vhdAzureMinSize {
		add("virtual size %d is smaller than Azure's minimum of 20 MiB", vsize)
	}
	if vsize != uint64(size-vhdFooterSize) {
		add("current size %d in the footer is not the file size %d minus the 512-byte footer (truncated or padded file)", vsize, size)
	}
	if ft.diskType == vhdTypeFixed && ft.dataOffset != vhdNoOffset {
		add("data offset %#x in a fixed disk's footer (want 0xFFFFFFFFFFFFFFFF)", ft.dataOffset)
	}
	return problems, nil
}

func vhdTypeName(t uint32) string {
	switch t {
	case vhdTypeFixed:
		return "fixed"
	case vhdTypeDynamic:
		return "dynamic"
	case vhdTypeDiff:
		return "differencing"
	}
	return "unknown"
}
