package atomicfile

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestWriteReplacesAndLeavesNoTemporary(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "state.json")
	require.NoError(t, os.WriteFile(p, []byte("old"), 0o600))
	require.NoError(t, Write(p, []byte("new"), 0o644))
	data, err := os.ReadFile(p)
	require.NoError(t, err)
	require.Equal(t, "new", string(data))
	fi, err := os.Stat(p)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o644), fi.Mode().Perm())
	entries, _ := os.ReadDir(dir)
	require.Len(t, entries, 1, "no temporary file is left")
	require.Error(t, Write(filepath.Join(dir, "missing", "x"), nil, 0o644), "a missing directory is an error")
}
