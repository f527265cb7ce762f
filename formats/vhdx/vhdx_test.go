package vhdx

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kiln-build/kiln/formats/image"
	"github.com/kiln-build/kiln/formats/internal/imagetest"
	"github.com/kiln-build/kiln/internal/testutil"
)

// vhdxOpenErr opens path and returns the error (closing any image).
func vhdxOpenErr(path string) error {
	img, err := Open(path)
	if err == nil {
		img.Close()
	}
	return err
}

func TestCheckVHDX(t *testing.T) {
	dir := t.TempDir()
	_, src := imagetest.Source(t, dir, 8<<20+100)
	good := imagetest.WriteFile(t, filepath.Join(dir, "good.vhdx"), src, image.Options{}, Write)
	imagetest.Problems(t, Check, good)

	header := func(b []byte, i int) []byte { return b[64<<10*(i+1) : 64<<10*(i+1)+4096] }
	region := func(b []byte, i int) []byte { return b[192<<10+64<<10*i : 256<<10+64<<10*i] }
	metaEntry := func(b []byte, i int) []byte { return b[vhdxMetaOff+32+32*i : vhdxMetaOff+64+32*i] }
	batEntry := func(b []byte, i int) []byte { return b[vhdxBATOff+8*i : vhdxBATOff+8*i+8] }

	for _, c := range []struct {
		name    string
		mutate  func(b []byte) []byte
		wants   []string
		openErr string // "" opens; "format" *image.FormatError; "unsupported" image.ErrUnsupported
	}{
		{"header 1 CRC", func(b []byte) []byte { header(b, 0)[200] ^= 1; return b },
			[]string{"header 1: CRC-32C mismatch"}, ""},
		{"both headers", func(b []byte) []byte { header(b, 0)[0] = 'H'; header(b, 1)[100] ^= 1; return b },
			[]string{"header 1: bad signature", "header 2: CRC-32C mismatch", "no valid header"}, "format"},
		{"header version", func(b []byte) []byte {
			binary.LittleEndian.PutUint16(header(b, 1)[66:], 2)
			vhdxSeal(header(b, 1))
			return b
		}, []string{"header 2: version 2"}, ""},
		{"same sequence", func(b []byte) []byte {
			binary.LittleEndian.PutUint64(header(b, 0)[8:], 2)
			vhdxSeal(header(b, 0))
			return b
		}, []string{"same sequence number"}, ""},
		{"log to replay", func(b []byte) []byte {
			for i := range 2 {
				header(b, i)[48] = 1
				vhdxSeal(header(b, i))
			}
			return b
		}, []string{"must be replayed"}, "unsupported"},
		{"region table 1 CRC", func(b []byte) []byte { region(b, 0)[1000] = 1; return b },
			[]string{"region table 1: CRC-32C mismatch"}, ""},
		{"region tables differ", func(b []byte) []byte {
			region(b, 1)[1000] = 1
			vhdxSeal(region(b, 1))
			return b
		}, []string{"region tables differ"}, ""},
		{"no region table", func(b []byte) []byte { region(b, 0)[0] = 0; region(b, 1)[0] = 0; return b },
			[]string{"no valid region table"}, "format"},
		{"metadata region unaligned", func(b []byte) []byte {
			for i := range 2 {
				binary.LittleEndian.PutUint64(region(b, i)[16+32+16:], vhdxMetaOff+4096)
				vhdxSeal(region(b, i))
			}
			return b
		}, []string{"metadata region (1048576 bytes at 2101248) not 1 MiB aligned", "overlap"}, "format"},
		{"metadata signature", func(b []byte) []byte { b[vhdxMetaOff] = 'M'; return b },
			[]string{"metadata table: bad signature"}, "format"},
		{"unknown required item", func(b []byte) []byte { metaEntry(b, 3)[0] ^= 0xff; return b },
			[]string{"unknown required metadata item", `required metadata item "logical sector size" missing`}, "unsupported"},
		{"missing item", func(b []byte) []byte {
			metaEntry(b, 1)[0] ^= 0xff
			metaEntry(b, 1)[24] = 0 // not required: ignorable, so just missing
			return b
		}, []string{`required metadata item "virtual disk size" missing`}, "format"},
		{"block size", func(b []byte) []byte {
			binary.LittleEndian.PutUint32(b[vhdxMetaOff+64<<10:], 3<<20)
			return b
		}, []string{"block size 3145728"}, "format"},
		{"sector size", func(b []byte) []byte {
			binary.LittleEndian.PutUint32(b[vhdxMetaOff+64<<10+32:], 1024)
			return b
		}, []string{"logical sector size 1024"}, "format"},
		{"disk size", func(b []byte) []byte {
			binary.LittleEndian.PutUint64(b[vhdxMetaOff+64<<10+8:], 8<<20+100)
			return b
		}, []string{"not a multiple of the logical sector size"}, "format"},
		{"parent", func(b []byte) []byte {
			b[vhdxMetaOff+64<<10+4] = 2
			return b
		}, []string{"differencing"}, "unsupported"},
		{"block state", func(b []byte) []byte { batEntry(b, 2)[0] = 7; return b },
			[]string{"block 2 partially present"}, ""},
		{"block overlaps metadata", func(b []byte) []byte {
			binary.LittleEndian.PutUint64(batEntry(b, 0), vhdxMetaOff|vhdxFullyPresent)
			return b
		}, []string{"block 0 at offset 2097152 overlaps the metadata region"}, ""},
		{"blocks overlap", func(b []byte) []byte {
			copy(batEntry(b, 8), batEntry(b, 0))
			return b
		}, []string{"overlap"}, ""},
		{"truncated", func(b []byte) []byte { return b[:len(b)-4096] },
			[]string{"runs past the end of the file"}, ""},
		{"bitmap entry", func(b []byte) []byte {
			// 9 data blocks, chunk ratio 4096: no bitmap entry exists;
			// the BAT has 9 entries. Make the disk 4097 MiB so one does.
			binary.LittleEndian.PutUint64(b[vhdxMetaOff+64<<10+8:], 4097<<20)
			binary.LittleEndian.PutUint64(batEntry(b, 4096), vhdxFullyPresent|3<<20)
			return b
		}, []string{"sector bitmap block in state 6"}, ""},
		{"not a VHDX", func(b []byte) []byte { return make([]byte, 1000) },
			[]string{"no \"vhdxfile\" signature", "too small"}, "format"},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := imagetest.Mutate(t, good, "bad.vhdx", c.mutate)
			imagetest.Problems(t, Check, p, c.wants...)
			err := vhdxOpenErr(p)
			switch c.openErr {
			case "":
				require.NoError(t, err)
			case "format":
				var fe *image.FormatError
				require.ErrorAs(t, err, &fe)
				require.Equal(t, "vhdx", fe.Format)
			case "unsupported":
				require.ErrorIs(t, err, image.ErrUnsupported)
			}
		})
	}
}

// TestVHDXReadErrors checks reads of blocks a malformed BAT points at fail
// with *image.FormatError.
func TestVHDXReadErrors(t *testing.T) {
	dir := t.TempDir()
	_, src := imagetest.Source(t, dir, 8<<20)
	good := imagetest.WriteFile(t, filepath.Join(dir, "good.vhdx"), src, image.Options{}, Write)
	for _, c := range []struct {
		name  string
		entry uint64
	}{
		{"partially present", vhdxPartiallyPresent},
		{"reserved state", 4},
		{"in the header section", vhdxFullyPresent},
		{"past the end", vhdxFullyPresent | 1<<40},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := imagetest.Mutate(t, good, "bad.vhdx", func(b []byte) []byte {
				binary.LittleEndian.PutUint64(b[vhdxBATOff:], c.entry)
				return b
			})
			img, err := Open(p)
			require.NoError(t, err)
			defer img.Close()
			_, err = img.ReadAt(make([]byte, 4096), 0)
			var fe *image.FormatError
			require.ErrorAs(t, err, &fe)
			_, err = img.Extents()
			if c.entry&7 != vhdxFullyPresent {
				require.ErrorAs(t, err, &fe)
			}
		})
	}
}

// TestCheckVHDXQemu runs the checker on qemu-img's VHDX files and qemu-img
// check on a file the checker flags.
func TestCheckVHDXQemu(t *testing.T) {
	testutil.Require(t, "qemu-img")
	dir := t.TempDir()
	rawPath, src := imagetest.Source(t, dir, 64<<20)
	for _, opts := range [][]string{nil, {"-o", "subformat=fixed"}, {"-o", "block_size=1M"}} {
		p := filepath.Join(dir, "q.vhdx")
		imagetest.QemuOK(t, append(append([]string{"convert", "-f", "raw", "-O", "vhdx"}, opts...), rawPath, p)...)
		imagetest.Problems(t, Check, p)
	}
	// qemu-img agrees that a VHDX with both headers broken is not one.
	ours := imagetest.WriteFile(t, filepath.Join(dir, "ours.vhdx"), src, image.Options{}, Write)
	bad := imagetest.Mutate(t, ours, "bad.vhdx", func(b []byte) []byte {
		b[64<<10+300] ^= 1
		b[128<<10+300] ^= 1
		return b
	})
	_, rc := imagetest.Qemu(t, "check", "-f", "vhdx", bad)
	require.NotEqual(t, 0, rc)
	// And reads a VHDX whose first header alone is broken.
	half := imagetest.Mutate(t, ours, "half.vhdx", func(b []byte) []byte { b[64<<10+300] ^= 1; return b })
	require.Contains(t, imagetest.QemuOK(t, "compare", "-f", "raw", "-F", "vhdx", rawPath, half), "identical")
	_ = os.Remove(half)
}
