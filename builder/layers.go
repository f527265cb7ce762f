package builder

import (
	"encoding/hex"
	"fmt"
	"io"
	"path/filepath"
	"sort"
	"time"

	"github.com/kiln-build/kiln/catalog"
	"github.com/kiln-build/kiln/components"
	"github.com/kiln-build/kiln/internal/redact"
	"github.com/kiln-build/kiln/internal/sandbox"
	"github.com/kiln-build/kiln/internal/units"
	"github.com/kiln-build/kiln/layers"
	"github.com/kiln-build/kiln/manifest"
)

// stepRunner names the way runSteps prepares a tree and runs a step in it
// (prepareForSteps, runStep, the sandbox). It is part of every layer's
// root key: change it whenever a step could leave a different tree.
const stepRunner = "builder-steps-v1"

// stepCache is the build stage's use of the layer cache (package layers):
// which build steps can be restored instead of run, and storing the layers
// of those that ran. A nil *stepCache caches nothing.
//
// The rule: a build step is cached unless it sets cache = false; a step
// after one that is not cached (cache = false, failed with on_failure =
// "continue", or not stored) is not cached either, since the tree it starts
// from cannot be reproduced. Validate steps are never cached.
type stepCache struct {
	store   *layers.Store
	root    string // the key of the tree before the first step
	image   string
	refresh bool // run every step, and store its layer again
	log     io.Writer
}

// stepCache is nil when the build has no cache directory.
func (s *state) stepCache() *stepCache {
	if s.opts.CacheDir == "" {
		return nil
	}
	// The tree before the first step: the base, and the hostname and boot
	// defaults the build stage writes.
	parts := []string{stepRunner, s.baseID, "hostname=" + s.img.Name, bootDefaultsKey(s.img)}
	if s.recipe != nil && len(s.recipe.Sensitive) > 0 {
		// A step's key covers its script and environment, so it would let
		// the manifest's cache_key confirm a guess of a sensitive value
		// offline: with the catalog's secret key in the root, it cannot
		// (the same reason the inputs digest uses that key).
		key, err := catalog.InputsKey(s.opts.ImagesDir)
		if err != nil {
			fmt.Fprintf(s.log, "==> layer cache: not caching: %v\n", err)
			return nil
		}
		parts = append(parts, "catalog-key="+hex.EncodeToString(key))
	}
	return &stepCache{
		store: layers.Open(LayersDir(s.opts.CacheDir)),
		root:  layers.Root(parts...),
		image: s.img.Name, refresh: s.opts.RefreshSteps, log: s.log,
	}
}

// keepSensitiveUncached marks the build steps whose script, environment or
// placed files hold a sensitive value as not cached (and with them every
// later step): their layer could hold the value, and the layer cache keeps
// what it stores on disk. A value the recipe transformed before a step saw
// it (hashed, encoded) is not recognised; the catalog's key in the root
// (stepCache) still keeps the step's cache_key from confirming a guess.
func keepSensitiveUncached(steps []components.Step, r *redact.Redactor, log io.Writer) {
	if r.Empty() {
		return
	}
	for i, st := range steps {
		sees := r.Contains(st.Script)
		for _, v := range st.Env {
			sees = sees || r.Contains([]byte(v))
		}
		for _, f := range st.Files {
			sees = sees || r.Contains(f.Data)
		}
		if sees && !st.NoCache {
			steps[i].NoCache = true
			fmt.Fprintf(log, "==> layer cache: build step %q sees a sensitive value: it and the steps after it are not cached\n", st.Name)
		}
	}
}

// LayersDir is where the layer cache lives under a cache directory.
func LayersDir(cacheDir string) string { return filepath.Join(cacheDir, "layers") }

// keys returns each step's layer key: empty for a step that is not cached
// and for every step after it.
func (c *stepCache) keys(steps []components.Step) []string {
	keys := make([]string, len(steps))
	if c == nil {
		return keys
	}
	parent := c.root
	for i, s := range steps {
		if s.NoCache {
			break
		}
		files := make([]layers.File, len(s.Files))
		for j, f := range s.Files {
			files[j] = layers.File{Path: f.Path, Mode: f.Mode, Data: f.Data}
		}
		keys[i] = layers.Step{Script: s.Script, Env: stepEnv(s), Files: files}.Key(parent)
		parent = keys[i]
	}
	return keys
}

// restore applies the cached layers of the longest prefix of steps it can,
// and returns their records.
func (c *stepCache) restore(tree string, steps []components.Step, keys []string) ([]manifest.StepRecord, error) {
	if c == nil || c.refresh {
		return nil, nil
	}
	var records []manifest.StepRecord
	_, err := c.store.Restore(tree, keys, func(i int, e *layers.Entry, took time.Duration) {
		fmt.Fprintf(c.log, "==> build step %q: restored from the layer cache (%s: %d entries, %d deleted, %s)\n",
			steps[i].Name, short(keys[i]), e.Entries, len(e.Deleted), units.ApproxSize(uint64(e.Size)))
		records = append(records, manifest.StepRecord{Name: steps[i].Name, Seconds: took.Seconds(), Cached: true, CacheKey: keys[i]})
	})
	return records, err
}

// scan records the tree before a step whose layer will be stored. On
// failure, caching stops: the step and the ones after it run uncached.
func (c *stepCache) scan(tree string, keys []string, from int) *layers.Snapshot {
	snap, err := layers.Scan(tree)
	if err == nil && snap.Reliable {
		return snap
	}
	c.stop(keys, from, fmt.Sprint("the tree could not be scanned: ", err))
	return nil
}

// commit stores step i's layer: what changed between before and the tree
// now. It returns the snapshot the next step starts from, or nil (caching
// stopped) when it could not store the layer; a build never fails for that.
func (c *stepCache) commit(tree string, i int, s components.Step, keys []string, before *layers.Snapshot) *layers.Snapshot {
	after, err := layers.Scan(tree)
	if err != nil || !after.Reliable {
		c.stop(keys, i, fmt.Sprint("the tree could not be scanned: ", err))
		return nil
	}
	parent := c.root
	if i > 0 {
		parent = keys[i-1]
	}
	e, err := c.store.Commit(layers.Meta{Key: keys[i], Parent: parent, Depth: i, Step: s.Name, Image: c.image}, tree, before, after, c.refresh)
	if err != nil {
		c.stop(keys, i, err.Error())
		return nil
	}
	fmt.Fprintf(c.log, "==> build step %q: layer %s stored (%d entries, %d deleted, %s)\n", s.Name, short(keys[i]), e.Entries, len(e.Deleted), units.ApproxSize(uint64(e.Size)))
	return after
}

// stop ends caching at step i: it and the steps after it are not cached.
func (c *stepCache) stop(keys []string, i int, why string) {
	if keys[i] != "" {
		fmt.Fprintf(c.log, "==> layer cache: not caching from this step on: %s\n", why)
	}
	for j := i; j < len(keys); j++ {
		keys[j] = ""
	}
}

// stepEnv is a step's complete environment: the sandbox's defaults, then
// the step's own variables in name order.
func stepEnv(s components.Step) []string {
	env := sandbox.DefaultEnv()
	keys := make([]string, 0, len(s.Env))
	for k := range s.Env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		env = append(env, k+"="+s.Env[k])
	}
	return env
}

// cachedNote is the build stage's progress note: how many steps came from
// the layer cache.
func cachedNote(records []manifest.StepRecord) string {
	n := 0
	for _, r := range records {
		if r.Cached {
			n++
		}
	}
	if n == 0 {
		return ""
	}
	return fmt.Sprintf("%d of %d step(s) from the layer cache", n, len(records))
}

func short(key string) string {
	if len(key) > 12 {
		return key[:12]
	}
	return key
}
