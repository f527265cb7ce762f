package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/kiln-build/kiln/catalog"
	"github.com/kiln-build/kiln/internal/sparse"
	"github.com/stretchr/testify/require"
)

// kilnBinary builds the kiln command into a temporary directory, for tests
// that need real, separate kiln processes.
func kilnBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "kiln")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	require.NoError(t, err, string(out))
	return bin
}

// Two kiln build processes of the same recipe, started at the same time,
// both publish, with distinct build numbers handed out under the version's
// lock: {1, 2}. Each records the recipe's catalog block and lifecycle rule,
// and is copied to the recipe's distribute target under the same number.
func TestE2EConcurrentBuildsGetDistinctNumbers(t *testing.T) {
	requireE2E(t)
	bin := kilnBinary(t)
	images, mirror := t.TempDir(), t.TempDir()
	recipe := bookwormRecipe(t, "twin", `
  boot { firmware = "uefi" }
  disk { size = "2GiB" }
  output { compress = "none" }
  catalog { share_with = ["alice"] }
  lifecycle { keep_last = 1 }
  distribute "mirror" { images = "`+mirror+`" }`)

	type result struct {
		code           int
		stdout, stderr string
	}
	results := make([]result, 2)
	var wg sync.WaitGroup
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cmd := exec.Command(bin, "build", "--json", "--images", images, "--cache", sharedCache(t), recipe)
			var out, errb bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &errb
			err := cmd.Run()
			code := 0
			if ee, ok := err.(*exec.ExitError); ok {
				code = ee.ExitCode()
			} else if err != nil {
				code = -1
			}
			results[i] = result{code, out.String(), errb.String()}
		}()
	}
	wg.Wait()

	var numbers []int
	for _, r := range results {
		require.Equal(t, 0, r.code, "stdout:\n%s\nstderr:\n%s", r.stdout, r.stderr)
		var res struct {
			Status, Path string
			Build        int
		}
		require.NoError(t, json.Unmarshal([]byte(r.stdout), &res))
		require.Equal(t, "published", res.Status)
		require.Equal(t, filepath.Join(images, "twin", "1.0.0", strconv.Itoa(res.Build)), res.Path)
		require.Equal(t, res.Build, readManifest(t, res.Path).Build, "the manifest names the directory it lives in")
		numbers = append(numbers, res.Build)
	}
	sort.Ints(numbers)
	require.Equal(t, []int{1, 2}, numbers)
	builds, err := catalog.Builds(filepath.Join(images, "twin", "1.0.0"))
	require.NoError(t, err)
	require.Equal(t, []int{1, 2}, builds)
	staging, _ := os.ReadDir(filepath.Join(images, ".staging"))
	require.Empty(t, staging, "no staging directory is left")

	// Both builds were distributed, byte for byte, with their numbers.
	builds, err = catalog.Builds(filepath.Join(mirror, "twin", "1.0.0"))
	require.NoError(t, err)
	require.Equal(t, []int{1, 2}, builds)
	for _, b := range []string{"1", "2"} {
		for _, f := range []string{"manifest.json", "twin.raw"} {
			a, err := sparse.SHA256(filepath.Join(images, "twin", "1.0.0", b, f))
			require.NoError(t, err)
			c, err := sparse.SHA256(filepath.Join(mirror, "twin", "1.0.0", b, f))
			require.NoError(t, err)
			require.Equal(t, a, c, "%s/%s", b, f)
		}
	}
	m := readManifest(t, filepath.Join(images, "twin", "1.0.0", "1"))
	require.Equal(t, []string{"alice"}, m.Catalog.SharedWith)
	require.Equal(t, 1, m.Catalog.Lifecycle.KeepLast)
	code, out, errOut := runKiln(t, "images", "show", "--images", mirror, "twin@1.0.0/1")
	require.Equal(t, 0, code, errOut)
	require.Contains(t, out, "visibility: shared with alice")
	code, out, errOut = runKiln(t, "images", "prune", "--dry-run", "--images", images)
	require.Equal(t, 0, code, errOut)
	require.Equal(t, 1, strings.Count(out, "would delete twin/1.0.0/"), out)
}
