package main

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kiln-build/kiln/internal/testutil"
	"github.com/kiln-build/kiln/manifest"
)

// kiln images push and pull through Debian's docker-registry: a build
// pushed from one catalog is pulled into an empty one, where kiln images
// show --manifest prints the same manifest.json and kiln images check
// finds nothing wrong; a second catalog's different build under the same
// number is refused with both digests (exit 1); usage mistakes exit 2.
func TestImagesPushPull(t *testing.T) {
	reg := testutil.StartRegistry(t, "", "")
	src, dest, other := t.TempDir(), t.TempDir(), t.TempDir()
	created := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	require.Equal(t, 1, fakeBuild(t, src, "web", "1.0.0", created, manifest.Catalog{}))
	repo := "oci://" + reg.Addr + "/team/web"

	code, out, errOut := runKiln(t, "images", "push", "--json", "--images", src, "web@1.0.0/1", repo)
	require.Equal(t, 0, code, errOut)
	var pushed struct {
		Status, Digest string
		Tags           []string
	}
	require.NoError(t, json.Unmarshal([]byte(out), &pushed))
	require.Equal(t, "pushed", pushed.Status)
	require.Equal(t, []string{"1.0.0-1", "1.0.0"}, pushed.Tags)

	code, out, errOut = runKiln(t, "images", "pull", "--images", dest, repo+":1.0.0")
	require.Equal(t, 0, code, errOut)
	require.Contains(t, out, "pulled web/1.0.0/1 from "+repo+"@"+pushed.Digest)
	_, want, _ := runKiln(t, "images", "show", "--manifest", "--images", src, "web@1.0.0/1")
	code, got, errOut := runKiln(t, "images", "show", "--manifest", "--images", dest, "web@1.0.0/1")
	require.Equal(t, 0, code, errOut)
	require.NotEmpty(t, want)
	require.Equal(t, want, got, "the same manifest")
	code, out, errOut = runKiln(t, "images", "check", "--images", dest)
	require.Equal(t, 0, code, "a pulled build is whole: files, sums, state and modes\n%s%s", out, errOut)
	code, out, _ = runKiln(t, "images", "pull", "--images", dest, repo+":1.0.0-1")
	require.Equal(t, 0, code)
	require.Contains(t, out, "web/1.0.0/1 is already in the catalog")

	// Another catalog's build 1 of web 1.0.0 is another image.
	fakeBuild(t, other, "web", "1.0.0", created.Add(time.Hour), manifest.Catalog{})
	code, _, errOut = runKiln(t, "images", "push", "--images", other, "web@1.0.0/1", repo)
	require.Equal(t, 1, code)
	require.Contains(t, errOut, "1.0.0-1 is already another build: the registry holds "+pushed.Digest+", this build is sha256:")

	code, out, errOut = runKiln(t, "images", "pull", "--missing-ok", "--images", dest, repo+":9.9.9")
	require.Equal(t, 0, code, errOut)
	require.Contains(t, out, "nothing to pull")
	code, _, errOut = runKiln(t, "images", "pull", "--images", dest, repo+":9.9.9")
	require.Equal(t, 1, code)
	require.Contains(t, errOut, "not found")

	code, out, errOut = runKiln(t, "images", "prune", "--dry-run", "--registry", repo)
	require.Equal(t, 0, code, errOut)
	require.Contains(t, out, "nothing to prune", "the build carries no lifecycle rule")

	for _, args := range [][]string{
		{"prune", "--registry", reg.Addr + "/team/web"},
		{"push", "web@1.0.0/1", reg.Addr + "/team/web"},
		{"push", "web@1.0.0/1", repo + ":1.0.0"},
		{"push", "web@1.0.0/1"},
		{"pull", reg.Addr + "/team/web:1.0.0"},
	} {
		code, _, errOut := runKiln(t, append([]string{"images"}, args...)...)
		require.Equal(t, 2, code, "%v: %s", args, errOut)
	}
}
