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

func FuzzOpenVHDX(f *testing.F) {
	dir := f.TempDir()
	src := imagetest.FuzzSeedSource(f, dir)
	f.Add(imagetest.FuzzSeed(f, dir, src, image.Options{}, Write), false)
	f.Add(imagetest.FuzzSeed(f, dir, src, image.Options{}, Write), true)
	f.Add(imagetest.FuzzSeed(f, dir, src, image.Options{Subformat: "fixed"}, Write), true)
	f.Add([]byte{}, false)
	// testdata/fuzz/FuzzOpenVHDX holds seeds made by qemu-img as well.
	// The checker must survive anything as well.
	imagetest.FuzzReader(f, "f.vhdx", "vhdx", Open, vhdFuzzFixVHDX, Check)
}
