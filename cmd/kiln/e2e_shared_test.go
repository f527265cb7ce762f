package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kiln-build/kiln/catalog"
	"github.com/kiln-build/kiln/manifest"
)

// minimalExample is the example most e2e tests need built: a trixie image
// booted under UEFI, published as a zstd raw image and a qcow2.
const minimalExample = "../../examples/debian-minimal.hcl"

// shared is examples/debian-minimal.hcl built and booted once per test
// binary, in a catalog of its own that tests only read (removeShared
// deletes it when the tests end). Each boot costs CI about a minute; the
// tests that only need a good build of the example share this one.
var shared struct {
	once     sync.Once
	root     string // the catalog
	dir      string // the build
	manifest *manifest.Manifest
	err      string
}

// sharedMinimal returns the shared build of debian-minimal: its manifest
// and its directory. Do not change it; copyShared puts a copy into a
// catalog of the test's own.
func sharedMinimal(t *testing.T) (*manifest.Manifest, string) {
	t.Helper()
	shared.once.Do(func() {
		root, err := os.MkdirTemp("", "kiln-e2e-shared-")
		if err != nil {
			shared.err = err.Error()
			return
		}
		shared.root = root
		var out, errb bytes.Buffer
		start := time.Now()
		code := run([]string{"build", "--json", "--images", root, "--cache", sharedCache(t), minimalExample}, &out, &errb)
		if code != 0 {
			shared.err = fmt.Sprintf("building %s (shared by the e2e tests): exit %d\nstdout:\n%s\nstderr:\n%s", minimalExample, code, out.String(), errb.String())
			return
		}
		var res struct{ Path string }
		if err := json.Unmarshal(out.Bytes(), &res); err != nil {
			shared.err = err.Error()
			return
		}
		shared.dir = res.Path
		if shared.manifest, err = manifest.Read(res.Path); err != nil {
			shared.err = err.Error()
		}
		fmt.Fprintf(os.Stderr, "e2e: built the shared %s in %s\n", minimalExample, time.Since(start).Round(time.Second))
	})
	if shared.err != "" {
		t.Fatal(shared.err)
	}
	markBuilt(minimalExample)
	return shared.manifest, shared.dir
}

// copyShared copies the shared build of debian-minimal into the catalog
// images (checksums verified) and returns its manifest and directory there.
func copyShared(t *testing.T, images string) (*manifest.Manifest, string) {
	t.Helper()
	m, dir := sharedMinimal(t)
	ref, err := catalog.ParseRef(fmt.Sprintf("%s@%s/%d", m.Name, m.Version, m.Build))
	require.NoError(t, err)
	e, err := catalog.Select(shared.root, ref, true, time.Now())
	require.NoError(t, err)
	require.Equal(t, dir, e.Dir)
	out, _, err := catalog.Distribute(t.Context(), e, images, time.Now())
	require.NoError(t, err)
	return readManifest(t, out.Dir), out.Dir
}

// removeShared deletes the shared build's catalog; TestMain calls it.
func removeShared() {
	if shared.root != "" {
		_ = os.RemoveAll(shared.root)
	}
}

// sharedRoot is the shared build's catalog.
func sharedRoot() string { return filepath.Clean(shared.root) }
