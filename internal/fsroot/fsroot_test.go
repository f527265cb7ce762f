package fsroot

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestResolveStaysInsideRoot(t *testing.T) {
	outside := t.TempDir()
	root := filepath.Join(t.TempDir(), "tree")
	require.NoError(t, os.MkdirAll(filepath.Join(root, "usr/lib"), 0o755))
	require.NoError(t, os.Symlink("/", filepath.Join(root, "etc")))              // /etc -> /
	require.NoError(t, os.Symlink("../../../..", filepath.Join(root, "var")))    // climbs
	require.NoError(t, os.Symlink(outside, filepath.Join(root, "opt")))          // absolute host path
	require.NoError(t, os.Symlink("usr/lib", filepath.Join(root, "lib")))        // ordinary relative link
	require.NoError(t, os.Symlink("/usr/lib", filepath.Join(root, "usr/lib64"))) // ordinary absolute link

	cases := map[string]string{
		"/etc/machine-id":        filepath.Join(root, "machine-id"),
		"/var/x":                 filepath.Join(root, "x"),
		"/opt/secret":            filepath.Join(root, outside, "secret"),
		"/lib/os-release":        filepath.Join(root, "usr/lib/os-release"),
		"/usr/lib64/ld.so":       filepath.Join(root, "usr/lib/ld.so"),
		"../../../../etc/shadow": filepath.Join(root, "machine-id/../shadow"),
	}
	for in, want := range cases {
		got, err := Resolve(root, in)
		require.NoError(t, err, in)
		require.Equal(t, filepath.Clean(want), got, in)
		rel, err := filepath.Rel(root, got)
		require.NoError(t, err)
		require.NotContains(t, "..", rel[:min(2, len(rel))], in)
	}

	// Writing through the hostile links lands inside the tree, never on the host.
	require.NoError(t, WriteFile(root, "/etc/hostile", []byte("x"), 0o644))
	require.NoError(t, WriteFile(root, "/opt/secret", []byte("x"), 0o644))
	require.FileExists(t, filepath.Join(root, "hostile"))
	require.NoFileExists(t, "/hostile")
	entries, err := os.ReadDir(outside)
	require.NoError(t, err)
	require.Empty(t, entries)
}

func TestSymlinkLoop(t *testing.T) {
	root := t.TempDir()
	require.NoError(t, os.Symlink("b", filepath.Join(root, "a")))
	require.NoError(t, os.Symlink("a", filepath.Join(root, "b")))
	_, err := Resolve(root, "/a/x")
	require.ErrorContains(t, err, "too many levels")
}

func TestRemoveDoesNotFollowLastLink(t *testing.T) {
	outside := t.TempDir()
	victim := filepath.Join(outside, "victim")
	require.NoError(t, os.WriteFile(victim, []byte("keep"), 0o644))
	root := t.TempDir()
	require.NoError(t, os.Symlink(victim, filepath.Join(root, "link")))
	require.NoError(t, Remove(root, "/link"))
	require.FileExists(t, victim)
	require.NoError(t, Remove(root, "/missing"))
}
