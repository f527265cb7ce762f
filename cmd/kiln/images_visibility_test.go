package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kiln-build/kiln/catalog"
	"github.com/kiln-build/kiln/internal/testutil"
	"github.com/kiln-build/kiln/manifest"
)

// readsAs reports whether a process running as uid/gid 65534 (nobody),
// with the given supplementary groups, can read path: the kernel's answer,
// not Kiln's.
func readsAs(t *testing.T, path string, groups ...uint32) bool {
	cmd := exec.Command("cat", path)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534, Groups: groups}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		require.Contains(t, string(out), "Permission denied", "cat %s as nobody", path)
		return false
	}
	return true
}

// Visibility is enforced on the files: a private build (also while it is
// staged) is readable by its owner only, a shared one by the members of
// the share group (KILN_SHARE_GROUP), a public one by anyone; kiln images
// share changes the modes with the state, and kiln images check finds and
// repairs modes that drifted. Checked by reading the files as another user.
func TestImagesVisibilityIsEnforcedOnTheFiles(t *testing.T) {
	testutil.RequireRoot(t)
	const group = 4242
	t.Setenv(catalog.ShareGroupEnv, "4242")
	root := t.TempDir()
	for d := root; d != os.TempDir(); d = filepath.Dir(d) { // let nobody reach the catalog
		require.NoError(t, os.Chmod(d, 0o755))
	}
	created := time.Now().UTC().Truncate(time.Second)
	fakeBuild(t, root, "web", "1.0.0", created, manifest.Catalog{})
	fakeBuild(t, root, "team", "1.0.0", created, manifest.Catalog{Visibility: catalog.Shared, SharedWith: []string{"alice"}})
	web := filepath.Join(root, "web", "1.0.0", "1")
	disk := filepath.Join(web, "web.raw")
	stat := func(p string) (os.FileMode, uint32) {
		fi, err := os.Stat(p)
		require.NoError(t, err)
		return fi.Mode().Perm(), fi.Sys().(*syscall.Stat_t).Gid
	}
	share := func(args ...string) {
		code, _, errOut := runKiln(t, append([]string{"images", "share", "--images", root, "web@1.0.0/1"}, args...)...)
		require.Equal(t, 0, code, errOut)
	}

	// Private: only the owner.
	mode, _ := stat(web)
	require.Equal(t, os.FileMode(0o700), mode)
	for _, f := range []string{"web.raw", "manifest.json", "catalog.json"} {
		mode, _ = stat(filepath.Join(web, f))
		require.Equal(t, os.FileMode(0o600), mode, f)
	}
	require.False(t, readsAs(t, disk))
	require.False(t, readsAs(t, disk, group))
	// Published shared: the share group reads it, nobody else.
	teamDisk := filepath.Join(root, "team", "1.0.0", "1", "team.raw")
	mode, gid := stat(teamDisk)
	require.Equal(t, os.FileMode(0o640), mode)
	require.Equal(t, uint32(group), gid)
	require.True(t, readsAs(t, teamDisk, group))
	require.False(t, readsAs(t, teamDisk))

	share("--add", "alice")
	mode, gid = stat(disk)
	require.Equal(t, os.FileMode(0o640), mode)
	require.Equal(t, uint32(group), gid)
	require.True(t, readsAs(t, disk, group), "a member of the share group reads a shared build")
	require.False(t, readsAs(t, disk), "others do not")

	share("--public")
	mode, _ = stat(disk)
	require.Equal(t, os.FileMode(0o644), mode)
	require.True(t, readsAs(t, disk), "anyone reads a public build")

	share("--private")
	require.False(t, readsAs(t, disk))
	require.False(t, readsAs(t, disk, group))

	// Drift: check finds it, --repair puts the private modes back.
	require.NoError(t, os.Chmod(web, 0o755))
	require.NoError(t, os.Chmod(disk, 0o644))
	require.True(t, readsAs(t, disk))
	code, out, _ := runKiln(t, "images", "check", "--images", root)
	require.Equal(t, 1, code)
	require.Contains(t, out, "mode: web/1.0.0/1: 2 file(s) do not have the modes of a private build: "+web+" is 0755, want 0700")
	code, out, _ = runKiln(t, "images", "check", "--repair", "--images", root)
	require.Equal(t, 0, code, out)
	require.False(t, readsAs(t, disk))

	// A build in progress is not readable by others either.
	s, err := catalog.NewStaging(root)
	require.NoError(t, err)
	defer s.Discard()
	staged := filepath.Join(s.Artifact, "x.raw")
	require.NoError(t, os.WriteFile(staged, []byte("secret"), 0o644))
	require.False(t, readsAs(t, staged))
	require.True(t, strings.HasPrefix(s.Dir, filepath.Join(root, ".staging")))
}
