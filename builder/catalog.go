package builder

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/kiln-build/kiln/catalog"
	"github.com/kiln-build/kiln/internal/semver"
	"github.com/kiln-build/kiln/recipes"
)

// CatalogSpec is what the recipe says about its builds' place in the
// catalog, as recorded in manifest.json under "catalog".
func CatalogSpec(img recipes.Image) catalog.Spec {
	s := catalog.Spec{
		Encrypted: img.Catalog.Encrypted, ProductCodes: img.Catalog.ProductCodes,
		Visibility: img.Catalog.Visibility, SharedWith: img.Catalog.ShareWith,
	}
	if len(s.ProductCodes) == 0 {
		s.ProductCodes = nil
	}
	if len(s.SharedWith) == 0 {
		s.SharedWith = nil
	}
	if lc := img.Lifecycle; lc != nil {
		s.Lifecycle = &catalog.Lifecycle{KeepLast: lc.KeepLast,
			DeprecateAfter: catalog.Age(lc.DeprecateAfter), DeleteAfter: catalog.Age(lc.DeleteAfter)}
	}
	return s
}

// distribute copies the published build at path to each of the recipe's
// distribute targets, and returns the paths of the copies.
func distribute(path string, targets []recipes.Distribution, log io.Writer) ([]string, error) {
	v, err := semver.Parse(filepath.Base(filepath.Dir(path)))
	if err != nil {
		return nil, err
	}
	var build int
	if _, err := fmt.Sscan(filepath.Base(path), &build); err != nil {
		return nil, err
	}
	e := catalog.Entry{Name: filepath.Base(filepath.Dir(filepath.Dir(path))), Version: v, Build: build, Dir: path}
	var out []string
	for _, t := range targets {
		copy, copied, err := catalog.Distribute(e, t.Images, time.Now())
		if err != nil {
			return out, fmt.Errorf("distribute %q: %w", t.Name, err)
		}
		fmt.Fprintf(log, "distribute %q: %s -> %s (copied: %v, every file's sha256 verified)\n", t.Name, path, copy.Dir, copied)
		out = append(out, copy.Dir)
	}
	return out, nil
}

// PublishPauseEnv names a test-only hook: when set to a path, a build that
// reaches the publish window (the version's lock held, its build number
// taken, manifest.json written, not yet renamed into the catalog) creates
// that file and waits 10 minutes, so that tests can kill it there. See
// docs/testing.md.
const PublishPauseEnv = "KILN_TEST_PAUSE_IN_PUBLISH"

func pauseInPublish() {
	path := os.Getenv(PublishPauseEnv)
	if path == "" {
		return
	}
	if err := os.WriteFile(path, []byte(strconv.Itoa(os.Getpid())), 0o644); err == nil {
		time.Sleep(10 * time.Minute)
	}
}
