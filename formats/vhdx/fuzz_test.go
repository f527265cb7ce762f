package vhdx

import (
	"testing"

	"github.com/kiln-build/kiln/formats/image"
	"github.com/kiln-build/kiln/formats/internal/imagetest"
)

// vhdFuzzFixVHDX reseals both headers and both region tables.
func vhdFuzzFixVHDX(patch imagetest.Patch, _ int64) {
	for _, off := range []int64{vhdxHeader1Off, vhdxHeader2Off} {
		patch(off, vhdxHeaderSize, vhdxSeal)
	}
	for _, off := range []int64{vhdxRegion1Off, vhdxRegion2Off} {
		patch(off, vhdxRegionSize, vhdxSeal)
	}
}

// testdata/fuzz/FuzzOpenVHDX holds seeds made by qemu-img as well. The
// checker must survive anything too.
func FuzzOpenVHDX(f *testing.F) {
	imagetest.FuzzReader(f, imagetest.FuzzTarget{Format: "vhdx", Open: Open, Fix: vhdFuzzFixVHDX, Check: Check,
		Write: Write, Seeds: []image.Options{{}, {Subformat: "fixed"}}})
}
