package builder

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/kiln-build/kiln/catalog"
	"github.com/kiln-build/kiln/components"
	"github.com/kiln-build/kiln/internal/redact"
	"github.com/kiln-build/kiln/internal/testutil"
	"github.com/kiln-build/kiln/layers"
	"github.com/kiln-build/kiln/manifest"
	"github.com/kiln-build/kiln/recipes"
)

func cacheSteps(third string) []components.Step {
	return []components.Step{
		{Name: "one", Timeout: time.Minute, Script: []byte("mkdir -p /opt/app\necho v1 > /opt/app/bin\nchmod 4755 /opt/app/bin\nln /opt/app/bin /opt/app/hard\nln -s bin /opt/app/link\n")},
		{Name: "two", Timeout: time.Minute, Script: []byte("rm /etc/gone\necho conf > /etc/app.conf\n"),
			Files: []components.Placed{{Path: "/etc/placed", Data: []byte("placed\n"), Mode: 0o600}}},
		{Name: "three", Timeout: time.Minute, Script: []byte("echo " + third + " > /etc/three\n")},
		{Name: "check", Timeout: time.Minute, Script: []byte("grep -q v1 /opt/app/bin\n"), NoCache: true}, // a validate step
	}
}

func cacheTree(t *testing.T) string {
	tree := testutil.BusyboxTree(t)
	addApplets(t, tree, "mkdir", "chmod", "ln", "rm")
	require.NoError(t, os.WriteFile(filepath.Join(tree, "etc/gone"), []byte("x"), 0o644))
	return tree
}

// contents records a tree's entries: type, mode, owner, content or link
// target, and which names share an inode (times differ between runs).
func contents(t *testing.T, tree string) map[string]string {
	out := map[string]string{}
	inode := map[uint64]string{}
	require.NoError(t, filepath.Walk(tree, func(p string, _ os.FileInfo, err error) error {
		require.NoError(t, err)
		rel, _ := filepath.Rel(tree, p)
		var st unix.Stat_t
		require.NoError(t, unix.Lstat(p, &st))
		v := fmt.Sprintf("mode %o uid %d gid %d nlink %d", st.Mode, st.Uid, st.Gid, st.Nlink)
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFREG:
			data, _ := os.ReadFile(p)
			sum := sha256.Sum256(data)
			v += " " + hex.EncodeToString(sum[:8])
			if first, ok := inode[st.Ino]; ok {
				v += " same inode as " + first
			} else {
				inode[st.Ino] = rel
			}
		case unix.S_IFLNK:
			l, _ := os.Readlink(p)
			v += " -> " + l
		}
		out[rel] = v
		return nil
	}))
	return out
}

func cached(records []manifest.StepRecord) []bool {
	var out []bool
	for _, r := range records {
		out = append(out, r.Cached)
	}
	return out
}

// A rebuild that changed only the third build step restores the first two
// from the layer cache and runs the third and the validate step, and its
// tree is the one running every step gives; --refresh-steps runs them all.
func TestStepCacheRerunsFromTheFirstChangedStep(t *testing.T) {
	base := cacheTree(t)
	trees := []string{testutil.CopyTree(t, base), testutil.CopyTree(t, base), testutil.CopyTree(t, base), testutil.CopyTree(t, base)}
	cache := &stepCache{store: layers.Open(filepath.Join(t.TempDir(), "layers")), root: layers.Root("test"), image: "t"}

	var log bytes.Buffer
	cache.log = &log
	first, err := runSteps(context.Background(), trees[0], cacheSteps("v1"), &log, cache)
	require.NoError(t, err)
	require.Equal(t, []bool{false, false, false, false}, cached(first))
	for i, r := range first[:3] {
		require.Len(t, r.CacheKey, 64, "build step %d's layer was stored", i)
	}
	require.Empty(t, first[3].CacheKey, "validate steps are not cached")

	log.Reset()
	second, err := runSteps(context.Background(), trees[1], cacheSteps("v2"), &log, cache)
	require.NoError(t, err)
	require.Equal(t, []bool{true, true, false, false}, cached(second))
	require.Equal(t, first[0].CacheKey, second[0].CacheKey)
	require.Equal(t, first[1].CacheKey, second[1].CacheKey)
	require.NotEqual(t, first[2].CacheKey, second[2].CacheKey)
	require.NotContains(t, log.String(), "==> build step \"one\"\n", "step one did not run")
	require.Contains(t, log.String(), "==> build step \"one\": restored from the layer cache")
	require.Contains(t, log.String(), "==> build step \"three\"\n")
	require.Contains(t, log.String(), "==> build step \"check\"\n", "the validate step ran")

	// The same steps, all run, uncached, give the same tree.
	_, err = runSteps(context.Background(), trees[2], cacheSteps("v2"), &bytes.Buffer{}, nil)
	require.NoError(t, err)
	require.Equal(t, contents(t, trees[2]), contents(t, trees[1]))
	require.NoFileExists(t, filepath.Join(trees[1], "usr/sbin/policy-rc.d"))
	require.NoDirExists(t, filepath.Join(trees[1], stepDir))

	cache.refresh = true
	log.Reset()
	third, err := runSteps(context.Background(), trees[3], cacheSteps("v2"), &log, cache)
	require.NoError(t, err)
	require.Equal(t, []bool{false, false, false, false}, cached(third), "--refresh-steps runs every step")
	require.Equal(t, second[2].CacheKey, third[2].CacheKey)
}

// A step with cache = false, and every step after it, runs every time and
// stores no layer; a step that failed with on_failure = "continue" ends
// caching the same way.
func TestUncachedStepEndsCaching(t *testing.T) {
	base := cacheTree(t)
	cache := &stepCache{store: layers.Open(filepath.Join(t.TempDir(), "layers")), root: layers.Root("test"), image: "t", log: &bytes.Buffer{}}
	steps := cacheSteps("v1")
	steps[1].NoCache = true
	recs, err := runSteps(context.Background(), testutil.CopyTree(t, base), steps, &bytes.Buffer{}, cache)
	require.NoError(t, err)
	require.Equal(t, []bool{false, false, false, false}, cached(recs))
	require.NotEmpty(t, recs[0].CacheKey)
	for _, r := range recs[1:] {
		require.Empty(t, r.CacheKey, r.Name)
	}
	recs, err = runSteps(context.Background(), testutil.CopyTree(t, base), steps, &bytes.Buffer{}, cache)
	require.NoError(t, err)
	require.Equal(t, []bool{true, false, false, false}, cached(recs))

	failing := cacheSteps("v1")
	failing[1].Script, failing[1].Continue = []byte("exit 3\n"), true
	for range 2 {
		recs, err = runSteps(context.Background(), testutil.CopyTree(t, base), failing, &bytes.Buffer{}, cache)
		require.NoError(t, err)
		require.True(t, recs[1].Failed)
		require.False(t, recs[1].Cached)
		require.False(t, recs[2].Cached, "the step after a failed one is not cached")
		require.Empty(t, recs[2].CacheKey)
	}
	es, err := cache.store.List()
	require.NoError(t, err)
	require.Len(t, es, 1, "only step one's layer is stored")
}

// A layer's key follows what its step sees: a variable only the third step
// uses changes the third key and no other; editing a script file changes
// its step's key and the keys after it.
func TestLayerKeysFollowVariablesAndFiles(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "four.sh"), []byte("echo four\n"), 0o755))
	recipe := filepath.Join(dir, "keys.hcl")
	require.NoError(t, os.WriteFile(recipe, []byte(`
variable "greeting" { default = "hello" }
variable "late" { default = "a" }
image "keys" {
  version = "1.0.0"
  base "debian" { suite = "bookworm" }
  build "shell" "one" { inline = ["echo ${var.greeting} > /etc/one"] }
  build "file" "two" {
    destination = "/etc/two"
    content     = "fixed\n"
  }
  build "shell" "three" {
    inline      = ["echo three"]
    environment = { LATE = var.late }
  }
  build "shell" "four" { script = "four.sh" }
}
`), 0o644))
	keysFor := func(vars ...string) []string {
		r, _, diags := recipes.Load(recipe, recipes.LoadOptions{Library: components.Builtin(), Vars: vars})
		require.False(t, diags.HasErrors(), "%s", diags)
		steps, err := components.BuildSteps(context.Background(), r.Image.Build)
		require.NoError(t, err)
		return (&stepCache{root: layers.Root("base")}).keys(steps)
	}
	keys := keysFor()
	require.Len(t, keys, 4)
	late := keysFor("late=b")
	require.Equal(t, keys[:2], late[:2], "steps one and two do not see var.late")
	require.NotEqual(t, keys[2], late[2])
	require.NotEqual(t, keys[3], late[3], "step four sits on step three's layer")
	greeting := keysFor("greeting=bye")
	for i := range keys {
		require.NotEqual(t, keys[i], greeting[i], "step %d sits on step one's layer", i)
	}
	require.NoError(t, os.WriteFile(filepath.Join(dir, "four.sh"), []byte("echo FOUR\n"), 0o755))
	edited := keysFor()
	require.Equal(t, keys[:3], edited[:3])
	require.NotEqual(t, keys[3], edited[3])
}

// A build stage run again after a failure (--on-error=ask) resumes at the
// failed step on the tree as the failure (and the user's shell) left it:
// it restores and stores no layer, while the first run stored the layers
// of the steps before the failure. Also when the first step failed.
func TestResumedBuildStageCachesNothingMore(t *testing.T) {
	for _, c := range []struct {
		name   string
		failAt int // the step that fails until /etc/fixed exists
	}{{"second-step", 1}, {"first-step", 0}} {
		t.Run(c.name, func(t *testing.T) {
			cacheDir := t.TempDir()
			steps := []recipes.Step{shellStep("one", "echo one > /etc/one"), shellStep("two", "echo two > /etc/two")}
			steps[c.failAt] = shellStep(steps[c.failAt].Name, "echo partial > /etc/partial", "test -f /etc/fixed")
			for i := range steps {
				steps[i].Timeout = time.Minute
			}
			s := &state{img: recipes.Image{Name: "resume", Build: steps},
				tree: cacheTree(t), baseID: "base", opts: Options{CacheDir: cacheDir}, m: &manifest.Manifest{}}
			var log bytes.Buffer
			s.log = &log
			_, err := stageBuild(context.Background(), s)
			require.ErrorContains(t, err, fmt.Sprintf("build step %q failed", steps[c.failAt].Name))
			require.Len(t, s.m.BuildSteps, c.failAt, log.String())
			var stored []string
			for _, r := range s.m.BuildSteps {
				require.Len(t, r.CacheKey, 64, "step %s's layer was stored", r.Name)
				stored = append(stored, r.CacheKey)
			}

			require.NoError(t, os.WriteFile(filepath.Join(s.tree, "etc/fixed"), nil, 0o644)) // the user's fix, in the shell
			log.Reset()
			_, err = stageBuild(context.Background(), s)
			require.NoError(t, err, log.String())
			require.Len(t, s.m.BuildSteps, 2)
			for _, r := range s.m.BuildSteps[c.failAt:] {
				require.False(t, r.Cached)
				require.Empty(t, r.CacheKey, "step %s ran on the resumed tree: its layer is not stored", r.Name)
			}
			require.Contains(t, log.String(), fmt.Sprintf("the build resumes at step %d: no layer is restored or stored", c.failAt+1))
			if c.failAt > 0 {
				require.NotContains(t, log.String(), "==> build step \"one\"", "step one is not run or restored again")
			}
			entries, err := layers.Open(LayersDir(cacheDir)).List()
			require.NoError(t, err)
			var keys []string
			for _, e := range entries {
				keys = append(keys, e.Key)
			}
			require.ElementsMatch(t, stored, keys)
		})
	}
}

// A recipe with a sensitive variable keys its layers with the catalog's
// secret key: the cache_key a manifest publishes cannot confirm a guess of
// the value. Other recipes share layers across catalogs.
func TestLayerRootOfSensitiveRecipesUsesTheCatalogKey(t *testing.T) {
	cacheDir := t.TempDir()
	root := func(r *recipes.Recipe, images string) string {
		c := (&state{recipe: r, img: recipes.Image{Name: "s"}, baseID: "base", log: &bytes.Buffer{},
			opts: Options{CacheDir: cacheDir, ImagesDir: images}}).stepCache()
		require.NotNil(t, c)
		return c.root
	}
	plain := &recipes.Recipe{Variables: map[string]any{"suite": "trixie"}}
	secret := &recipes.Recipe{Variables: map[string]any{"password": "hunter2"}, Sensitive: map[string]bool{"password": true}}
	a, b := t.TempDir(), t.TempDir()
	require.Equal(t, root(plain, a), root(plain, b), "no sensitive variable: the catalog does not matter")
	require.Equal(t, root(secret, a), root(secret, a), "same catalog: same root, the layers are reused")
	require.NotEqual(t, root(secret, a), root(secret, b), "another catalog's key, another root")
	require.NotEqual(t, root(plain, a), root(secret, a))
	require.FileExists(t, filepath.Join(a, catalog.InputsKeyFile))
}

// A build step whose script, environment or placed files hold a sensitive
// value is not cached, nor is any step after it: no layer keeps the value.
func TestStepsThatSeeASensitiveValueAreNotCached(t *testing.T) {
	secret := redact.New(recipes.Redacted, "hunter22")
	for _, c := range []struct {
		name string
		step components.Step
	}{
		{"script", components.Step{Script: []byte("echo token=hunter22 > /etc/app.conf\n")}},
		{"env", components.Step{Script: []byte("echo \"$TOKEN\" > /etc/app.conf\n"), Env: map[string]string{"TOKEN": "hunter22"}}},
		{"file", components.Step{Files: []components.Placed{{Path: "/etc/app.conf", Data: []byte("{\"token\": \"hunter22\"}\n"), Mode: 0o600}}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			c.step.Name = "configure"
			steps := []components.Step{
				{Name: "install", Script: []byte("echo installed > /etc/installed\n")},
				c.step,
				{Name: "after", Script: []byte("echo after > /etc/after\n")},
			}
			log := &bytes.Buffer{}
			keepSensitiveUncached(steps, secret, log)
			require.Equal(t, []bool{false, true, false}, []bool{steps[0].NoCache, steps[1].NoCache, steps[2].NoCache})
			keys := (&stepCache{root: layers.Root("base")}).keys(steps)
			require.NotEmpty(t, keys[0], "a step before it is cached")
			require.Equal(t, []string{"", ""}, keys[1:], "it and the steps after it are not")
			require.Contains(t, log.String(), `build step "configure" sees a sensitive value`)
			require.NotContains(t, log.String(), "hunter22")
		})
	}
	steps := []components.Step{{Name: "plain", Script: []byte("echo hunter2 > /etc/x\n")}}
	keepSensitiveUncached(steps, nil, io.Discard)
	require.False(t, steps[0].NoCache, "no sensitive variable: cached")
}
