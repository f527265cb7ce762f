package boottest

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kiln-build/kiln/internal/sparse"
)

// Run holds the image to the sha256 its caller gives (a build's disk
// stage's) after the boots, as to the one it reads itself: a sum that does
// not match the image fails, whether the image changed or the caller's sum
// was wrong. With no boots, this is the whole of Run.
func TestRunChecksTheImageAgainstTheCallersSum(t *testing.T) {
	img := filepath.Join(t.TempDir(), "disk.raw")
	require.NoError(t, os.WriteFile(img, []byte("a disk"), 0o644))
	sum, err := sparse.SHA256(img)
	require.NoError(t, err)

	_, err = Run(context.Background(), Suite{Image: img})
	require.NoError(t, err, "its own sum")
	_, err = Run(context.Background(), Suite{Image: img, ImageSHA256: sum})
	require.NoError(t, err, "the caller's sum, matching")
	_, err = Run(context.Background(), Suite{Image: img, ImageSHA256: "0123"})
	require.ErrorContains(t, err, "the image changed while it was tested (sha256 0123, then "+sum+")")
}
