package formats

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kiln-build/kiln/formats/internal/imagetest"
)

// Decompress survives any .zst or .xz file: an error or a file no larger
// than the limit (lowered to 64 MiB while fuzzing), never a panic, a hang
// or an allocation beyond the checked window or dictionary. Seeds: Kiln's
// own parallel chunks here, and files made by the zstd and xz tools in
// testdata/fuzz/FuzzDecompress (see its README).
func FuzzDecompress(f *testing.F) {
	for _, algo := range []string{CompressZstd, CompressXZ} {
		for _, in := range [][]byte{nil, []byte("kiln"), bytes.Repeat([]byte("disk image "), 10000), make([]byte, 1<<20)} {
			var out bytes.Buffer
			require.NoError(f, Compress(context.Background(), &out, bytes.NewReader(in), algo, 1))
			f.Add(out.Bytes())
		}
	}
	dir := imagetest.FuzzDir(f)
	in, out := filepath.Join(dir, "in"), filepath.Join(dir, "out")
	f.Fuzz(func(t *testing.T, data []byte) {
		old := decompressLimit
		decompressLimit = 64 << 20
		defer func() { decompressLimit = old }()
		require.NoError(t, os.WriteFile(in, data, 0o644))
		_ = os.Remove(out)
		if err := Decompress(context.Background(), in, out); err != nil {
			require.NoFileExists(t, out, "a failed decompression leaves no output")
			return
		}
		fi, err := os.Stat(out)
		require.NoError(t, err)
		require.LessOrEqual(t, fi.Size(), decompressLimit)
	})
}
