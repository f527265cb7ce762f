package vhdx

import (
	"os"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kiln-build/kiln/formats/image"
	"github.com/kiln-build/kiln/formats/internal/imagetest"
)

func vhdFuzzFixVHDX(t *testing.T, path string) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	require.NoError(t, err)
	defer f.Close()
	for _, off := range []int64{vhdxHeader1Off, vhdxHeader2Off} {
		imagetest.FuzzPatch(f, off, vhdxHeaderSize, vhdxSeal)
	}
	for _, off := range []int64{vhdxRegion1Off, vhdxRegion2Off} {
		imagetest.FuzzPatch(f, off, vhdxRegionSize, vhdxSeal)
	}
}

// testdata/fuzz/FuzzOpenVHDX holds seeds made by qemu-img as well. The
// checker must survive anything too.
func FuzzOpenVHDX(f *testing.F) {
	imagetest.FuzzReader(f, imagetest.FuzzTarget{Format: "vhdx", Open: Open, Fix: vhdFuzzFixVHDX, Check: Check,
		Write: Write, Seeds: []image.Options{{}, {Subformat: "fixed"}}})
}
