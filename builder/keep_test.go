package builder

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestKeepForDebugging(t *testing.T) {
	staging, failed := t.TempDir(), filepath.Join(t.TempDir(), ".failed", "x-1.0.0-T")
	tree, raw := filepath.Join(staging, "tree"), filepath.Join(staging, "x.raw")
	require.NoError(t, os.MkdirAll(filepath.Join(tree, "etc"), 0o755))
	msg := keepForDebugging(failed, tree, raw)
	require.Contains(t, msg, "chroot "+filepath.Join(failed, "tree")+" /bin/bash")
	require.DirExists(t, filepath.Join(failed, "tree", "etc"))
	require.NoDirExists(t, tree)

	failed2 := failed + "2"
	require.NoError(t, os.WriteFile(raw, []byte("disk"), 0o644))
	msg = keepForDebugging(failed2, tree, raw)
	require.Contains(t, msg, "kiln run "+filepath.Join(failed2, "disk.raw"))
	require.FileExists(t, filepath.Join(failed2, "disk.raw"))
	require.Empty(t, keepForDebugging(failed+"3", tree, raw), "nothing left to keep")
}
