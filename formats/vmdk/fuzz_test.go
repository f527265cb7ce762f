package vmdk

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kiln-build/kiln/formats/image"
	"github.com/kiln-build/kiln/formats/internal/imagetest"
	"github.com/kiln-build/kiln/internal/deflate"
	"github.com/kiln-build/kiln/internal/testutil"
)

// vmdkCraft builds a compact single-file VMDK by hand (small grains, small
// grain tables, no padding), so that fuzzing starts from small valid files
// of both subformats. data is the virtual disk; zero grains are left out.
func vmdkCraft(sub string, grainSectors uint64, gtes uint32, data []byte) []byte {
	capSectors := uint64(len(data)+511) / 512
	data = append(data, make([]byte, int(capSectors*512)-len(data))...)
	grainBytes := int(grainSectors * 512)
	grains := (int(capSectors) + int(grainSectors) - 1) / int(grainSectors)
	numGTs := (grains + int(gtes) - 1) / int(gtes)
	gtSectors := (int(gtes)*4 + 511) / 512
	gdSectors := (numGTs*4 + 511) / 512
	stream := sub == StreamOptimized

	h := vmdkHeader{Version: 1, Flags: vmdkFlagNewline, Capacity: capSectors, GrainSize: grainSectors,
		DescOffset: 1, DescSize: 1, NumGTEsPerGT: gtes}
	desc := fmt.Sprintf("# Disk DescriptorFile\nversion=1\nCID=fffffffe\nparentCID=ffffffff\ncreateType=%q\nRW %d SPARSE \"x.vmdk\"\n", sub, capSectors)
	out := make([]byte, 1024)
	copy(out[512:], desc)
	sectors := func() uint32 { return uint32(len(out) / 512) }
	pad := func() {
		for len(out)%512 != 0 {
			out = append(out, 0)
		}
	}
	gd := make([]byte, gdSectors*512)
	gts := make([][]byte, numGTs)
	for i := range gts {
		gts[i] = make([]byte, gtSectors*512)
	}
	if !stream {
		// GD then GTs, then grains.
		h.GDOffset = 2
		for i := range gts {
			binary.LittleEndian.PutUint32(gd[i*4:], uint32(2+gdSectors+i*gtSectors))
		}
		h.OverHead = uint64(2 + gdSectors + numGTs*gtSectors)
		out = append(out, make([]byte, int(h.OverHead-2)*512)...)
	} else {
		h.Version = 3
		h.Flags |= vmdkFlagCompress | vmdkFlagMarkers
		h.CompressAlgor = vmdkCompressDeflate
		h.GDOffset = vmdkGDAtEnd
		h.OverHead = 2
	}
	d := deflate.NewEncoder()
	flushGT := func(t int) {
		if !stream || t < 0 || image.IsZero(gts[t]) {
			return
		}
		out = append(out, vmdkMarker(uint64(gtSectors), vmdkMarkerGT)...)
		binary.LittleEndian.PutUint32(gd[t*4:], sectors())
		out = append(out, gts[t]...)
	}
	cur := -1
	for g := 0; g < grains; g++ {
		chunk := data[g*grainBytes : min((g+1)*grainBytes, len(data))]
		if image.IsZero(chunk) {
			continue
		}
		if t := g / int(gtes); t != cur {
			flushGT(cur)
			cur = t
		}
		binary.LittleEndian.PutUint32(gts[g/int(gtes)][(g%int(gtes))*4:], sectors())
		if stream {
			full := append(append([]byte{}, chunk...), make([]byte, grainBytes-len(chunk))...)
			m := binary.LittleEndian.AppendUint64(nil, uint64(g)*grainSectors)
			z := d.Compress(nil, full)
			m = binary.LittleEndian.AppendUint32(m, uint32(len(z)))
			out = append(out, append(m, z...)...)
		} else {
			out = append(out, chunk...)
		}
		pad()
	}
	flushGT(cur)
	if stream {
		out = append(out, vmdkMarker(uint64(gdSectors), vmdkMarkerGD)...)
		gdAt := sectors()
		out = append(out, gd...)
		out = append(out, vmdkMarker(1, vmdkMarkerFooter)...)
		f := h
		f.GDOffset = uint64(gdAt)
		out = append(out, f.marshal()...)
		out = append(out, vmdkMarker(0, vmdkMarkerEOS)...)
	} else {
		copy(out[int(h.GDOffset)*512:], gd)
		for i, t := range gts {
			copy(out[(int(h.GDOffset)+gdSectors+i*gtSectors)*512:], t)
		}
	}
	copy(out, h.marshal())
	return out
}

func vmdkCraftData() []byte {
	data := make([]byte, 20000)
	copy(data[100:], "hello, grain")
	copy(data[5000:], testutil.Text(3000))
	data[19999] = 9
	return data
}

func TestVMDKCrafted(t *testing.T) {
	data := vmdkCraftData()
	for _, sub := range []string{MonolithicSparse, StreamOptimized} {
		for _, geo := range []struct {
			grain uint64
			gtes  uint32
		}{{1, 128}, {2, 4}, {8, 512}, {128, 512}} {
			b := vmdkCraft(sub, geo.grain, geo.gtes, append([]byte{}, data...))
			img, err := OpenAt(bytes.NewReader(b), int64(len(b)))
			require.NoError(t, err, "%s %+v", sub, geo)
			got := make([]byte, img.Size())
			_, err = img.ReadAt(got, 0)
			require.NoError(t, err)
			require.Equal(t, append(append([]byte{}, data...), make([]byte, len(got)-len(data))...), got)
		}
	}
}

func FuzzOpenVMDK(f *testing.F) {
	data := vmdkCraftData()
	for _, sub := range []string{MonolithicSparse, StreamOptimized} {
		good := vmdkCraft(sub, 1, 16, append([]byte{}, data[:3000]...))
		f.Add(good)
		f.Add(vmdkCraft(sub, 8, 4, append([]byte{}, data...)))
		for _, c := range vmdkCorruptions(good) {
			f.Add(c.data)
		}
	}
	// Files from the writer itself (64 KiB grains, 128 sectors of overhead).
	dir := f.TempDir()
	_, files := vmdkSmall(f, dir, 200<<10, map[int64][]byte{70000: []byte("data")})
	for _, p := range files {
		b, err := os.ReadFile(p)
		require.NoError(f, err)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		img, err := OpenAt(bytes.NewReader(b), int64(len(b)))
		if err == nil {
			err = imagetest.Exercise(img, 64<<20)
		}
		if err != nil && !imagetest.Malformed(err) {
			t.Fatalf("unexpected error type %T: %v", err, err)
		}
	})
}
