package vmdk

import (
	"path/filepath"
	"testing"

	"github.com/kiln-build/kiln/formats/image"
	"github.com/kiln-build/kiln/formats/internal/imagetest"
)

// FuzzOpenVMDKFile fuzzes whole VMDK files as Open reads them from a path
// (a descriptor file's extent paths included), in imagetest's compact
// encoding, so that real images (64 KiB grains, mostly zeros) make small
// seeds: Kiln's writer's here, qemu-img's in
// testdata/fuzz/FuzzOpenVMDKFile (see its README). FuzzOpenVMDK fuzzes
// hand-made small files byte by byte.
func FuzzOpenVMDKFile(f *testing.F) {
	dir := f.TempDir()
	src := imagetest.FuzzSeedSource(f, dir)
	for _, sub := range []string{MonolithicSparse, StreamOptimized} {
		f.Add(imagetest.FuzzSeed(f, dir, src, image.Options{Subformat: sub}, Write))
	}
	f.Add(imagetest.FuzzEncode([]byte("# Disk DescriptorFile\nversion=1\ncreateType=\"monolithicFlat\"\nRW 2048 FLAT \"disk-flat.vmdk\" 0\n")))
	p := filepath.Join(imagetest.FuzzDir(f), "f.vmdk")
	f.Fuzz(func(t *testing.T, data []byte) {
		imagetest.FuzzFile(t, p, data)
		img, err := Open(p)
		if err != nil {
			imagetest.FuzzOpenErr(t, err)
			return
		}
		defer img.Close()
		imagetest.FuzzExercise(t, img)
	})
}
