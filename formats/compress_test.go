package formats

import (
	"bytes"
	"context"
	"crypto/sha256"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/kiln-build/kiln/internal/testutil"
	"github.com/stretchr/testify/require"
)

func compressible(n int) []byte {
	r := rand.New(rand.NewSource(1))
	words := []string{"kiln ", "image ", "disk ", "boot ", "grub ", "ext4 ", "\n"}
	var b bytes.Buffer
	for b.Len() < n {
		if r.Intn(200) == 0 {
			var x [64]byte
			r.Read(x[:])
			b.Write(x[:])
		}
		b.WriteString(words[r.Intn(len(words))])
	}
	return b.Bytes()[:n]
}

// The output decodes with the reference tools and is deterministic.
func TestCompressDecodesWithReferenceTools(t *testing.T) {
	testutil.Require(t, "xz", "zstd")
	// Data, then whole all-zero chunks of both sizes (compressed once and
	// reused), then data, then a partial all-zero chunk at the end.
	data := append(compressible(20<<20), make([]byte, 2*xzChunk+zstdChunk)...)
	data = append(data, compressible(3<<20)...)
	data = append(data, make([]byte, 5<<20)...)
	dir := t.TempDir()
	for _, algo := range []string{CompressZstd, CompressXZ} {
		var outs [][32]byte
		for _, workers := range []int{1, 3} {
			var b bytes.Buffer
			require.NoError(t, Compress(context.Background(), &b, bytes.NewReader(data), algo, workers))
			require.Less(t, b.Len(), len(data)/2, algo)
			outs = append(outs, sha256.Sum256(b.Bytes()))
			f := filepath.Join(dir, "out"+CompressExt(algo))
			require.NoError(t, os.WriteFile(f, b.Bytes(), 0o644))
			tool := map[string][]string{CompressZstd: {"zstd", "-d", "-c", "-q", f}, CompressXZ: {"xz", "-d", "-c", f}}[algo]
			got, err := exec.Command(tool[0], tool[1:]...).Output()
			require.NoError(t, err, algo)
			require.Equal(t, sha256.Sum256(data), sha256.Sum256(got), "%s with %d workers decodes to the input", algo, workers)
		}
		require.Equal(t, outs[0], outs[1], "%s output does not depend on the number of workers", algo)
	}
	// An empty input is a valid empty file.
	for algo, tool := range map[string]string{CompressXZ: "xz", CompressZstd: "zstd"} {
		var b bytes.Buffer
		require.NoError(t, Compress(context.Background(), &b, bytes.NewReader(nil), algo, 2))
		f := filepath.Join(dir, "empty"+CompressExt(algo))
		require.NoError(t, os.WriteFile(f, b.Bytes(), 0o644))
		got, err := exec.Command(tool, "-d", "-c", f).Output()
		require.NoError(t, err, algo)
		require.Empty(t, got, algo)
	}
}

func TestCompressCancelAndUnknown(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var b bytes.Buffer
	require.ErrorIs(t, Compress(ctx, &b, bytes.NewReader(compressible(40<<20)), CompressXZ, 2), context.Canceled)
	require.ErrorContains(t, Compress(context.Background(), &b, bytes.NewReader(nil), "lz4", 1), "unknown compression")
}
