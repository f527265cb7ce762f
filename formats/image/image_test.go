package image

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestForEachBlockVisitsOnlyData(t *testing.T) {
	p := filepath.Join(t.TempDir(), "src.raw")
	f, err := os.Create(p)
	require.NoError(t, err)
	require.NoError(t, f.Truncate(64<<20))
	_, _ = f.WriteAt([]byte{1}, 5)
	_, _ = f.WriteAt(make([]byte, 1<<20), 8<<20) // explicit zeros: skipped
	_, _ = f.WriteAt([]byte{2}, 64<<20-1)
	require.NoError(t, f.Close())
	src, err := OpenRaw(p)
	require.NoError(t, err)
	defer src.Close()
	var offs []int64
	require.NoError(t, ForEachBlock(src, 65536, func(off int64, data []byte) error {
		offs = append(offs, off)
		require.Len(t, data, 65536)
		return nil
	}))
	require.Equal(t, []int64{0, 64<<20 - 65536}, offs)
}
