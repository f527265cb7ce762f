package qcow2

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kiln-build/kiln/formats/image"
	"github.com/kiln-build/kiln/internal/sparse"
	"github.com/kiln-build/kiln/internal/testutil"
	"github.com/stretchr/testify/require"
)

// onlyExtents is a image.Source limited to some extents of a raw file.
type onlyExtents struct {
	*image.RawFile
	exts []sparse.Extent
}

func (o onlyExtents) Extents() ([]sparse.Extent, error) { return o.exts, nil }

// An overlay holds only the given clusters; QEMU reads the rest from the
// backing file through the backing format's driver.
func TestQCOW2OverlayOnBackingFile(t *testing.T) {
	testutil.Require(t, "qemu-img")
	dir := t.TempDir()
	if d := os.Getenv("KILN_KEEP"); d != "" {
		dir = d
	}
	base := filepath.Join(dir, "base.raw")
	require.NoError(t, os.WriteFile(base, []byte(strings.Repeat("base", 1<<18)), 0o644)) // 1 MiB
	require.NoError(t, os.Truncate(base, 8<<20))
	vhd := filepath.Join(dir, "base.vhd")
	out := testutil.Run(t, "qemu-img", "convert", "-f", "raw", "-O", "vpc", "-o", "subformat=dynamic", base, vhd)

	// The changed view: base with one cluster rewritten.
	changed := filepath.Join(dir, "changed.raw")
	require.NoError(t, sparse.Copy(changed, base))
	f, err := os.OpenFile(changed, os.O_RDWR, 0)
	require.NoError(t, err)
	_, err = f.WriteAt([]byte(strings.Repeat("NEW!", 16384)), 4<<20)
	require.NoError(t, err)
	require.NoError(t, f.Close())
	src, err := image.OpenRaw(changed)
	require.NoError(t, err)
	defer src.Close()

	overlay := filepath.Join(dir, "overlay.qcow2")
	o, err := os.Create(overlay)
	require.NoError(t, err)
	require.NoError(t, Write(context.Background(), o, onlyExtents{src, []sparse.Extent{{Off: 4 << 20, Len: 64 << 10}}},
		image.Options{BackingFile: vhd, BackingFormat: "vpc"}))
	require.NoError(t, o.Close())

	out = testutil.Run(t, "qemu-img", "check", overlay)
	out = testutil.Run(t, "qemu-img", "info", overlay)
	require.Contains(t, string(out), "backing file: "+vhd)
	require.Contains(t, string(out), "backing file format: vpc")
	out = testutil.Run(t, "qemu-img", "compare", "-f", "raw", "-F", "qcow2", changed, overlay)
	fi, _ := os.Stat(overlay)
	require.Less(t, fi.Size(), int64(1<<20), "the overlay holds only the changed cluster")
}
