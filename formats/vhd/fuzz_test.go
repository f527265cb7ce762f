package vhd

import (
	"context"
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kiln-build/kiln/formats/image"
	"github.com/kiln-build/kiln/formats/internal/imagetest"
)

// vhdFuzzFixVHD reseals the footers and the dynamic header.
func vhdFuzzFixVHD(patch imagetest.Patch, size int64) {
	var dataOff int64 = -1
	for _, off := range []int64{size - vhdFooterSize, 0} {
		patch(off, vhdFooterSize, func(b []byte) {
			if string(b[:8]) != "conectix" {
				return
			}
			binary.BigEndian.PutUint32(b[vhdFtChecksum:], vhdChecksum(b, vhdFtChecksum))
			if d := binary.BigEndian.Uint64(b[vhdFtDataOffset:]); dataOff < 0 && d < imagetest.FuzzMaxFile {
				dataOff = int64(d)
			}
		})
	}
	patch(dataOff, vhdDynHeaderSize, func(b []byte) {
		binary.BigEndian.PutUint32(b[vhdDhChecksum:], vhdChecksum(b, vhdDhChecksum))
	})
}

// vhdTinyDynamic is a hand-made dynamic VHD with 4 KiB blocks (the reader
// takes any power of two from 512 bytes): 3 blocks, block 1 absent, block 2
// with a partial sector bitmap.
func vhdTinyDynamic() []byte {
	const bs = 4096
	var b []byte
	footer := vhdMakeFooter(vhdTypeDynamic, 3*bs, [16]byte{1})
	b = append(b, footer...)
	b = append(b, vhdMakeDynHeader(1536, 3, bs)...)
	bat := make([]byte, 512)
	for i := range bat {
		bat[i] = 0xff
	}
	binary.BigEndian.PutUint32(bat[0:], 2048/512)
	binary.BigEndian.PutUint32(bat[8:], (2048+512+bs)/512)
	b = append(b, bat...)
	for blk, bm := range []byte{0xff, 0xa5} {
		bitmap := make([]byte, 512)
		bitmap[0] = bm
		b = append(b, bitmap...)
		data := make([]byte, bs)
		for i := range data {
			data[i] = byte(i*7 + blk)
		}
		b = append(b, data...)
	}
	return append(b, footer...)
}

func FuzzOpenVHD(f *testing.F) {
	f.Add(imagetest.FuzzEncode(vhdTinyDynamic()), false)
	f.Add(imagetest.FuzzEncode(vhdTinyDynamic()), true)
	f.Add(imagetest.FuzzEncode(append(make([]byte, 4096), vhdMakeFooter(vhdTypeFixed, 4096, [16]byte{})...)), true)
	imagetest.FuzzReader(f, imagetest.FuzzTarget{Format: "vhd", Open: Open, Fix: vhdFuzzFixVHD,
		Write: Write, Seeds: []image.Options{{}, {Subformat: "dynamic"}}})
}

// TestVHDFuzzEncode checks the fuzz encoding round-trips a real file.
func TestVHDFuzzEncode(t *testing.T) {
	dir := t.TempDir()
	src := imagetest.FuzzSeedSource(t, dir)
	for _, c := range []struct {
		o     image.Options
		write func(context.Context, *os.File, image.Source, image.Options) error
	}{{image.Options{Subformat: "dynamic"}, Write}, {image.Options{}, Write}} {
		p := imagetest.WriteFile(t, filepath.Join(dir, "orig"), src, c.o, c.write)
		orig, err := os.ReadFile(p)
		require.NoError(t, err)
		enc := imagetest.FuzzEncode(orig)
		require.Less(t, len(enc), 8<<10)
		q := filepath.Join(dir, "copy")
		imagetest.FuzzFile(t, q, enc)
		back, err := os.ReadFile(q)
		require.NoError(t, err)
		require.Equal(t, orig, back)
	}
	tiny := vhdTinyDynamic()
	p := filepath.Join(dir, "tiny.vhd")
	require.NoError(t, os.WriteFile(p, tiny, 0o644))
	img, err := Open(p)
	require.NoError(t, err)
	defer img.Close()
	got := make([]byte, img.Size())
	_, err = img.ReadAt(got, 0)
	require.NoError(t, err)
	for i := range 4096 {
		require.Equal(t, byte(i*7), got[i])        // block 0: all present
		require.Equal(t, byte(0), got[4096+i])     // block 1: absent
		present := byte(0xa5)&(0x80>>(i/512)) != 0 // block 2: bitmap 10100101
		want := byte(0)
		if present {
			want = byte(i*7 + 1)
		}
		require.Equal(t, want, got[8192+i], "byte %d of block 2", i)
	}
}
