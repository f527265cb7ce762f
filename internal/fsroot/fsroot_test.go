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

	// Writing through a link to the root, or one that climbs above it, is
	// refused with an error that names the path and the link; an absolute
	// link to a host path is re-rooted and lands inside the tree.
	err := WriteFile(root, "/etc/hostile", []byte("x"), 0o644)
	var le *LinkError
	require.ErrorAs(t, err, &le)
	require.Equal(t, "/etc/hostile", le.Path)
	require.Equal(t, "/etc", le.Link)
	require.ErrorContains(t, err, `/etc is a symlink to "/", which points at the tree's root`)
	_, err = MkdirAll(root, "/var/lib/x", 0o755)
	require.ErrorContains(t, err, `refusing to write /var/lib/x in the image tree: /var is a symlink to "../../../..", which climbs above the tree's root`)
	require.ErrorAs(t, Remove(root, "/etc/machine-id"), &le)
	require.ErrorAs(t, RemoveAll(root, "/var/x/y"), &le)
	require.NoError(t, WriteFile(root, "/opt/secret", []byte("x"), 0o644))
	require.NoError(t, WriteFile(root, "/lib/ok", []byte("x"), 0o644))
	require.FileExists(t, filepath.Join(root, "usr/lib/ok"))
	require.NoFileExists(t, filepath.Join(root, "hostile"))
	require.NoFileExists(t, "/hostile")
	entries, err := os.ReadDir(outside)
	require.NoError(t, err)
	require.Empty(t, entries)
}

func TestHostileLinkRules(t *testing.T) {
	for target, want := range map[string]string{
		"/": "points at the tree's root", "../..": "climbs above the tree's root", ".": "", "..": "points at the tree's root",
		"/run/systemd/resolve/stub-resolv.conf": "", "../run/x": "", "usr/lib": "", "../../../usr/lib": "climbs above the tree's root",
		"//": "points at the tree's root", "/usr/..": "points at the tree's root",
	} {
		got := hostile(1, target) // a link in a directory one level below the root, like /etc/x
		require.Equal(t, want, got, target)
	}
	require.Equal(t, "points at the tree's root", hostile(0, "."), "/x -> . is the root")
	require.Equal(t, "", hostile(2, "."), "/usr/bin/X11 -> . is fine")
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
