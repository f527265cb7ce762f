package vhdx

import (
	"os"
	"path/filepath"
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
	// One file per fuzzing process, rewritten by every run: a temporary
	// directory per run costs more than the run.
	p := filepath.Join(imagetest.FuzzDir(f), "f.vhdx")
	f.Fuzz(func(t *testing.T, data []byte, fix bool) {
		imagetest.FuzzFile(t, p, data)
		if fix {
			vhdFuzzFixVHDX(t, p)
		}
		img, err := Open(p)
		if err != nil {
			imagetest.FuzzOpenErr(t, err)
		} else {
			require.Equal(t, "vhdx", img.Format())
			imagetest.FuzzExercise(t, img)
			img.Close()
		}
		// The checker must survive anything as well.
		_, err = Check(p)
		require.NoError(t, err)
	})
}
