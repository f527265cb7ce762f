package main

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kiln-build/kiln/builder"
	"github.com/kiln-build/kiln/manifest"
)

// layeredRecipe is a bookworm image with three build steps and a validate
// step that passes only when var.three is "fixed". Step one installs a
// package from the archive and makes a file with a file capability, a
// setuid file with a hard link; step two deletes a file of the base; step
// three is the only one that sees var.three. nonce makes this run's first
// build miss the shared cache.
func layeredRecipe(t *testing.T, nonce string) string {
	p := filepath.Join(t.TempDir(), "layered.hcl")
	text := `variable "three" { type = string }
image "layered" {
  version = "1.0.0"
  base "debian" { suite = "bookworm" }
  boot { firmware = "uefi" }
  disk { size = "2GiB" }
  output {
    formats  = ["raw"]
    compress = "none"
  }
  build "shell" "one" {
    inline = [
      "echo ` + nonce + ` > /etc/kiln-nonce",
      "apt-get update",
      "apt-get install -y --no-install-recommends libcap2-bin",
      "apt-get clean",
      "install -m 0755 /bin/true /usr/local/bin/kiln-cap",
      "setcap cap_net_raw+ep /usr/local/bin/kiln-cap",
      "install -m 4755 /bin/true /usr/local/bin/kiln-suid",
      "ln /usr/local/bin/kiln-suid /usr/local/bin/kiln-suid-link",
    ]
  }
  build "shell" "two" { inline = ["rm /etc/issue.net", "echo two > /etc/kiln-two"] }
  build "shell" "three" { inline = ["echo ${var.three} > /etc/kiln-three"] }
  validate "shell" "three-is-fixed" { inline = ["grep -qx fixed /etc/kiln-three"] }
  test "shell" "layers" {
    inline = [
      "getcap /usr/local/bin/kiln-cap | grep -q cap_net_raw",
      "test -u /usr/local/bin/kiln-suid",
      "test \"$(stat -c %i /usr/local/bin/kiln-suid)\" = \"$(stat -c %i /usr/local/bin/kiln-suid-link)\"",
      "dpkg-query -W -f='$${Status}' libcap2-bin | grep -qx 'install ok installed'",
      "test ! -e /etc/issue.net",
      "grep -qx two /etc/kiln-two",
      "grep -qx fixed /etc/kiln-three",
    ]
  }
}
`
	require.NoError(t, os.WriteFile(p, []byte(text), 0o644))
	return p
}

// The edit-build-test loop: a build whose validate step fails (var.three is
// wrong; nothing boots) stores the layers of its three build steps; the
// rebuild with only the third step changed restores steps one and two from
// the layer cache, runs only step three and the validate step, and the
// image boots with everything the restored layers hold (a package, a file
// capability, a setuid file and its hard link, a deleted file). One boot.
func TestE2ELayerCacheRerunsOnlyTheChangedStep(t *testing.T) {
	requireE2E(t)
	images, cache := t.TempDir(), sharedCache(t)
	recipe := layeredRecipe(t, fmt.Sprintf("%s-%d", t.Name(), time.Now().UnixNano()))

	code, out, errOut := runKiln(t, "build", "--images", images, "--cache", cache, "-var", "three=broken", recipe)
	require.Equal(t, 1, code, "stdout:\n%s\nstderr:\n%s", out, errOut)
	require.Contains(t, errOut, `build step "three-is-fixed" failed`)
	logs, _ := filepath.Glob(filepath.Join(images, ".failed", "layered-1.0.0-*", "build.log"))
	require.Len(t, logs, 1)
	first, err := os.ReadFile(logs[0])
	require.NoError(t, err)
	for _, s := range []string{"one", "two", "three", "three-is-fixed"} {
		require.Contains(t, string(first), fmt.Sprintf("==> build step %q\n", s), "the first build ran every step")
	}

	broken := regexp.MustCompile(`==> build step "three": layer ([0-9a-f]{12}) stored`).FindStringSubmatch(string(first))
	require.NotNil(t, broken, "the first build stored step three's layer")
	t.Cleanup(func() { removeLayers(cache, broken[1]) })

	m, _ := buildExample(t, images, recipe, "three=fixed")
	t.Cleanup(func() {
		for _, s := range m.BuildSteps {
			removeLayers(cache, s.CacheKey)
		}
	})
	require.Len(t, m.BuildSteps, 4)
	one, two, three, check := m.BuildSteps[0], m.BuildSteps[1], m.BuildSteps[2], m.BuildSteps[3]
	require.Equal(t, []string{"one", "two", "three", "three-is-fixed"}, []string{one.Name, two.Name, three.Name, check.Name})
	for _, s := range []manifest.StepRecord{one, two} {
		require.True(t, s.Cached, "step %s came from the layer cache", s.Name)
		require.Contains(t, string(first), fmt.Sprintf("==> build step %q: layer %s stored", s.Name, s.CacheKey[:12]),
			"the layer restored is the one the first build stored")
	}
	require.False(t, three.Cached, "step three changed and ran")
	require.NotEmpty(t, three.CacheKey, "its new layer was stored")
	require.False(t, check.Cached)
	require.Empty(t, check.CacheKey, "validate steps are not cached")

	second, err := os.ReadFile(filepath.Join(images, "layered", "1.0.0", "1", "build.log"))
	require.NoError(t, err)
	require.NotContains(t, string(second), "==> build step \"one\"\n", "step one did not run")
	require.NotContains(t, string(second), "==> build step \"two\"\n", "step two did not run")
	require.Contains(t, string(second), "==> build step \"three\"\n")
	require.Contains(t, string(second), "==> build step \"three-is-fixed\"\n")

	require.Len(t, m.Tests, 1)
	require.Equal(t, manifest.Pass, m.Tests[0].Status, m.Tests[0].Output)
	require.True(t, m.Health[0].MultiUser)
	t.Logf("step one: %.1fs restored (it ran in the first build); build stage %.1fs", one.Seconds, m.StageSeconds("build"))

	code, out, errOut = runKiln(t, "cache", "ls", "--cache", cache)
	require.Equal(t, 0, code, errOut)
	require.Regexp(t, `layer\s+`+three.CacheKey[:12]+`\s+layered\s+3 three\s`, out)
}

// removeLayers drops the layers a test stored in the shared cache, by key
// or key prefix: their keys hang from this run's nonce, so no other build
// can use them.
func removeLayers(cache, key string) {
	if key == "" || strings.ContainsAny(key, "/.*?[") {
		return
	}
	dirs, _ := filepath.Glob(filepath.Join(builder.LayersDir(cache), key+"*"))
	for _, d := range dirs {
		_ = os.RemoveAll(d)
	}
}
