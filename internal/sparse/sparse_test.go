package sparse

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestCopyKeepsHolesAndBytes(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src.raw")
	f, err := os.Create(src)
	require.NoError(t, err)
	require.NoError(t, f.Truncate(256<<20))
	_, err = f.WriteAt([]byte("start"), 0)
	require.NoError(t, err)
	_, err = f.WriteAt(make([]byte, 1<<20), 64<<20) // explicit zeros: copied as a hole
	require.NoError(t, err)
	_, err = f.WriteAt([]byte("end"), 256<<20-3)
	require.NoError(t, err)
	require.NoError(t, f.Close())

	dst := filepath.Join(dir, "dst.raw")
	require.NoError(t, Copy(dst, src))
	a, _ := os.ReadFile(src)
	b, _ := os.ReadFile(dst)
	require.Equal(t, sha256.Sum256(a), sha256.Sum256(b))

	var st syscall.Stat_t
	require.NoError(t, syscall.Stat(dst, &st))
	require.Less(t, st.Blocks*512, int64(1<<20), "copy must stay sparse")

	sum, err := SHA256(dst)
	require.NoError(t, err)
	want := sha256.Sum256(a)
	require.Equal(t, hex.EncodeToString(want[:]), sum)
}
