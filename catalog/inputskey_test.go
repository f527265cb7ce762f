package catalog

import (
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestInputsKey(t *testing.T) {
	root := filepath.Join(t.TempDir(), "images")
	keys := make([][]byte, 8)
	var wg sync.WaitGroup
	for i := range keys {
		wg.Add(1)
		go func() {
			defer wg.Done()
			k, err := InputsKey(root)
			require.NoError(t, err)
			keys[i] = k
		}()
	}
	wg.Wait()
	for _, k := range keys {
		require.Len(t, k, 32)
		require.Equal(t, keys[0], k, "concurrent builds share one key")
	}
	fi, err := os.Stat(filepath.Join(root, InputsKeyFile))
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
	entries, _ := os.ReadDir(root)
	require.Len(t, entries, 1, "no temporary file is left")
	other, err := InputsKey(t.TempDir())
	require.NoError(t, err)
	require.NotEqual(t, keys[0], other)

	require.NoError(t, os.WriteFile(filepath.Join(root, InputsKeyFile), []byte("short"), 0o600))
	_, err = InputsKey(root)
	require.ErrorContains(t, err, "not a 32-byte key")
	_, err = InputsKey("")
	require.Error(t, err)
}
