package builder

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"time"

	"github.com/kiln-build/kiln/catalog"
	"github.com/kiln-build/kiln/internal/semver"
	"github.com/kiln-build/kiln/manifest"
	"github.com/kiln-build/kiln/oci"
	"github.com/kiln-build/kiln/recipes"
)

// CatalogSpec is what the recipe says about its builds' place in the
// catalog, as recorded in manifest.json under "catalog".
func CatalogSpec(img recipes.Image) manifest.Catalog {
	s := manifest.Catalog{
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
		s.Lifecycle = &manifest.Lifecycle{KeepLast: lc.KeepLast,
			DeprecateAfter: manifest.Age(lc.DeprecateAfter), DeleteAfter: manifest.Age(lc.DeleteAfter)}
	}
	return s
}

// distribute copies the published build at path to each of the recipe's
// distribute targets, another catalog or a registry (oci.Push), and
// returns where the copies are: their paths, or REGISTRY/REPO:TAG@DIGEST.
func distribute(ctx context.Context, path string, targets []recipes.Distribution, kilnVersion string, log io.Writer) ([]string, error) {
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
		if t.Registry() {
			to, err := oci.ParseRef(t.Images)
			if err != nil {
				return out, fmt.Errorf("distribute %q: %w", t.Name, err)
			}
			res, err := oci.Push(ctx, path, to, oci.Options{PlainHTTP: t.PlainHTTP, UserAgent: "kiln/" + kilnVersion, Log: log}, t.ContainerDisk)
			if err != nil {
				return out, fmt.Errorf("distribute %q: %w", t.Name, err)
			}
			fmt.Fprintf(log, "distribute %q: %s -> %s@%s (tags %s)\n", t.Name, path, res.Repo, res.Digest, strings.Join(res.Tags, ", "))
			out = append(out, res.Repo.String()+":"+res.Tag+"@"+res.Digest)
			continue
		}
		copy, copied, err := catalog.Distribute(ctx, e, t.Images, time.Now())
		if err != nil {
			return out, fmt.Errorf("distribute %q: %w", t.Name, err)
		}
		fmt.Fprintf(log, "distribute %q: %s -> %s (copied: %v, every file's sha256 verified)\n", t.Name, path, copy.Dir, copied)
		out = append(out, copy.Dir)
	}
	return out, nil
}

// catalogInitialState writes the build's first catalog.json into staging.
func catalogInitialState(s *state) error {
	return catalog.WriteInitialState(s.staging.Artifact, s.m.Catalog, s.m.Created)
}
