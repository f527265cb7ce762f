package ova

import (
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kiln-build/kiln/formats/internal/imagetest"
)

// Check survives any archive: it reports problems, and errors only when
// the file cannot be read. The input is a file in imagetest's compact
// encoding (an OVA is mostly tar padding and zero grains); seeds are
// Kiln's own OVAs here, and OVAs made by qemu-img and GNU tar in
// testdata/fuzz/FuzzCheckOVA (see its README).
func FuzzCheckOVA(f *testing.F) {
	dir := f.TempDir()
	src := imagetest.FuzzSeedSource(f, dir)
	for _, fw := range []string{"efi", "bios"} {
		p := filepath.Join(dir, fw+".ova")
		ovaWrite(f, p, src, OVFSpec{Name: "fuzz", Firmware: fw, DiskFile: "fuzz-disk1.vmdk", Capacity: src.Size()}, fw == "bios")
		f.Add(imagetest.FuzzEncodeFile(f, p))
	}
	f.Add([]byte{})
	p := filepath.Join(imagetest.FuzzDir(f), "f.ova")
	f.Fuzz(func(t *testing.T, data []byte) {
		imagetest.FuzzFile(t, p, data)
		_, err := Check(p)
		require.NoError(t, err)
	})
}
