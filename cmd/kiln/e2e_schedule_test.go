package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// One real build of examples/debian-minimal.hcl with --if-changed, then:
// a second --if-changed build is skipped as up to date, and `kiln schedule`
// runs pipelines against the same catalog.
func TestE2EIfChangedAndSchedule(t *testing.T) {
	requireE2E(t)
	images, cache := t.TempDir(), sharedCache(t)
	recipe, err := filepath.Abs("../../examples/debian-minimal.hcl")
	require.NoError(t, err)

	code, out, errOut := runKiln(t, "build", "--if-changed", "--json", "--images", images, "--cache", cache, recipe)
	require.Equal(t, 0, code, "stdout:\n%s\nstderr:\n%s", out, errOut)
	var first struct{ Path, InputsDigest string }
	var res map[string]any
	require.NoError(t, json.Unmarshal([]byte(out), &res))
	require.Equal(t, "published", res["status"], "no build existed, so it is built")
	first.Path, _ = res["path"].(string)
	first.InputsDigest, _ = res["inputs_digest"].(string)
	m := readManifest(t, first.Path)
	require.Len(t, m.InputsDigest, 64)
	require.Equal(t, m.InputsDigest, first.InputsDigest)
	require.NotNil(t, m.Inputs)
	require.Equal(t, m.Base.ReleaseSHA256, m.Inputs.Base.ReleaseSHA256)
	require.Equal(t, m.Recipe.SHA256, m.Inputs.RecipeSHA256)
	require.Equal(t, m.InputsDigest, m.Inputs.Digest(), "the recorded inputs hash to the recorded digest")

	t.Run("if-changed", func(t *testing.T) {
		code, out, errOut := runKiln(t, "build", "--if-changed", "--json", "--images", images, "--cache", cache, recipe)
		require.Equal(t, 0, code, "stdout:\n%s\nstderr:\n%s", out, errOut)
		var res map[string]any
		require.NoError(t, json.Unmarshal([]byte(out), &res))
		require.Equal(t, "up-to-date", res["status"])
		require.EqualValues(t, 1, res["build"])
		require.Equal(t, first.Path, res["path"])
		require.Equal(t, first.InputsDigest, res["inputs_digest"])

		code, out, errOut = runKiln(t, "build", "--if-changed", "--images", images, "--cache", cache, recipe)
		require.Equal(t, 0, code, "stdout:\n%s\nstderr:\n%s", out, errOut)
		require.Contains(t, out, "up to date: debian-minimal/1.0.0/1")
		require.NoDirExists(t, filepath.Join(images, "debian-minimal", "1.0.0", "2"), "nothing was built")
		entries, _ := os.ReadDir(filepath.Join(images, ".staging"))
		require.Empty(t, entries)
	})

	t.Run("schedule", func(t *testing.T) { testScheduleService(t, images, cache, recipe) })
}
