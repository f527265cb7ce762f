package vmdk

import (
	"testing"

	"github.com/kiln-build/kiln/formats/image"
	"github.com/kiln-build/kiln/formats/internal/imagetest"
)

// FuzzOpenVMDKFile fuzzes whole VMDK files as Open reads them from a path
// (a descriptor file's extent paths included), in imagetest's compact
// encoding, so that real images (64 KiB grains, mostly zeros) make small
// seeds: Kiln's writer's here, qemu-img's in
// testdata/fuzz/FuzzOpenVMDKFile (see its README). FuzzOpenVMDK fuzzes
// small hand-made files byte by byte.
func FuzzOpenVMDKFile(f *testing.F) {
	imagetest.FuzzReader(f, imagetest.FuzzTarget{Format: "vmdk", Open: Open,
		Write: Write, Seeds: []image.Options{{Subformat: MonolithicSparse}, {Subformat: StreamOptimized}}})
}
