package builder

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"

	"github.com/kiln-build/kiln/base"
	"github.com/kiln-build/kiln/bootloader"
	"github.com/kiln-build/kiln/catalog"
	"github.com/kiln-build/kiln/manifest"
	"github.com/kiln-build/kiln/oci"
	"github.com/kiln-build/kiln/platform"
	"github.com/kiln-build/kiln/recipes"
)

// RecipeInputs collects the inputs of r for a Debian base at mirror (already
// resolved: not empty) whose archive has the given InRelease digest. A
// recipe with sensitive variables needs the catalog imagesDir, whose
// secret key the inputs hash them with.
func RecipeInputs(r *recipes.Recipe, imagesDir, kilnVersion, mirror, releaseSHA256 string) (*manifest.Inputs, error) {
	img := r.Image
	vars, err := inputVariables(r, imagesDir)
	if err != nil {
		return nil, err
	}
	in := &manifest.Inputs{
		KilnVersion: kilnVersion, RecipeSHA256: r.SHA256, Files: map[string]string{}, Variables: vars,
		Components: r.ComponentDigest(),
		Base: manifest.BaseInputs{Type: string(img.Base.Type), Suite: img.Base.Suite, Variant: img.Base.Variant, Arch: img.Base.Arch,
			Mirror: mirror, Components: img.Base.Components, Packages: debianPackages(img.Base.Packages, img.Boot.SecureBoot), ReleaseSHA256: releaseSHA256},
	}
	if in.Variables == nil {
		in.Variables = map[string]any{}
	}
	// Custom Secure Boot: the certificate (which the key must match; the
	// key itself is secret) and the variable store the tests boot with.
	for _, path := range []string{img.Boot.SecureBootCertificate, img.Boot.SecureBootVars} {
		if path == "" {
			continue
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("secure boot: %w", err)
		}
		if rel, err := filepath.Rel(r.Dir, path); err == nil {
			path = rel
		}
		sum := sha256.Sum256(data)
		in.Files[filepath.ToSlash(path)] = hex.EncodeToString(sum[:])
	}
	// The image's own steps; a component's files are in its digest.
	for _, s := range append(append(append([]recipes.Step{}, img.Build...), img.Validate...), img.Tests...) {
		var path string
		var data []byte
		switch {
		case s.Component != "":
			continue
		case s.Action.Shell != nil && s.Action.Shell.Script != "":
			var err error
			if data, err = os.ReadFile(s.Action.Shell.Script); err != nil {
				return nil, fmt.Errorf("step %q: %w", s.Name, err)
			}
			path = s.Action.Shell.Script
		case s.Action.File != nil && s.Action.File.Source != "":
			// read when the recipe was loaded: what the build will write
			path, data = s.Action.File.Source, s.Action.File.Content
		default:
			continue
		}
		sum := sha256.Sum256(data)
		in.Files[inputPath(r, path)] = hex.EncodeToString(sum[:])
	}
	// The files the recipe's expressions read (file(), templatefile(),
	// fileexists()), hashed when the recipe was loaded.
	for path, sum := range r.ReadFiles {
		in.Files[inputPath(r, path)] = sum
	}
	return in, nil
}

// inputPath is how the inputs record a file: relative to the recipe's
// directory, with slashes.
func inputPath(r *recipes.Recipe, path string) string {
	if rel, err := filepath.Rel(r.Dir, path); err == nil {
		path = rel
	}
	return filepath.ToSlash(path)
}

// recipeRecord is the manifest's record of the recipe: sensitive values
// redacted, and what makes the build not reproducible.
func recipeRecord(r *recipes.Recipe) manifest.Recipe {
	return manifest.Recipe{Path: r.Path, SHA256: r.SHA256, Variables: r.PublicVariables(), NotReproducible: r.NotReproducible}
}

// inputVariables are the variables as the inputs digest covers them: a
// sensitive value as an HMAC-SHA256 keyed with the catalog's secret key
// (catalog.InputsKey), so that changing it changes the digest while the
// manifest holds nothing a guess could be checked against. (A key anyone
// can read, such as the recipe's digest, would let a published manifest
// confirm guesses of a weak password offline.)
func inputVariables(r *recipes.Recipe, imagesDir string) (map[string]any, error) {
	out := r.PublicVariables()
	if len(r.Sensitive) == 0 {
		return out, nil
	}
	key, err := catalog.InputsKey(imagesDir)
	if err != nil {
		return nil, fmt.Errorf("hashing sensitive variables: %w", err)
	}
	for name := range r.Sensitive {
		text, err := json.Marshal(r.Variables[name])
		if err != nil {
			continue
		}
		mac := hmac.New(sha256.New, key)
		mac.Write([]byte("kiln-sensitive-variable\x00" + name + "\x00"))
		mac.Write(text)
		out[name] = recipes.Redacted + " hmac-sha256:" + hex.EncodeToString(mac.Sum(nil))
	}
	return out, nil
}

// debianPackages is what the base stage installs on top of the variant,
// sorted and without duplicates.
func debianPackages(extra []string, sb platform.SecureBoot) []string {
	seen := map[string]bool{}
	var out []string
	for _, p := range append(append(BasePackages(), bootloader.Packages(sb)...), extra...) {
		if !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	sort.Strings(out)
	return out
}

// ResolveInputs collects r's inputs before a build: it resolves the mirror
// (the recipe's, else the host's apt sources) and reads the archive's
// InRelease digest, which needs the network.
func ResolveInputs(ctx context.Context, r *recipes.Recipe, imagesDir, kilnVersion string) (*manifest.Inputs, error) {
	switch b := r.Image.Base; b.Type {
	case recipes.BaseImage, recipes.BaseFile, recipes.BaseOCI:
		in, err := RecipeInputs(r, imagesDir, kilnVersion, "", "")
		if err != nil {
			return nil, err
		}
		switch b.Type {
		case recipes.BaseFile:
			// The recipe pins the file by its sha256, which the build checks.
			in.Base.Digest = base.ParentDigest(&manifest.Parent{Kind: "file", SHA256: b.SHA256})
		case recipes.BaseOCI:
			// What the tag names now: a moved tag is a changed base.
			ref, o, err := ociBase(b, kilnVersion, nil)
			if err != nil {
				return nil, err
			}
			d, err := oci.Resolve(ctx, ref, o)
			if err != nil {
				return nil, err
			}
			in.Base.Digest = base.ParentDigest(&manifest.Parent{Kind: "oci", Ref: ref.String(), Digest: d})
		default:
			if in.Base.Digest, err = base.ImageDigest(base.ImageBase{Root: imagesDir, Name: b.Name, Selector: b.VersionSelector, IncludeDeprecated: b.IncludeDeprecated}); err != nil {
				return nil, err
			}
		}
		return in, nil
	}
	mirror := r.Image.Base.Mirror
	if mirror == "" {
		m, err := base.HostMirror()
		if err != nil {
			return nil, err
		}
		mirror = m
	}
	release, err := base.ReleaseDigest(ctx, mirror, r.Image.Base.Suite)
	if err != nil {
		return nil, fmt.Errorf("reading the archive's Release file for %q from %s: %w", r.Image.Base.Suite, mirror, err)
	}
	return RecipeInputs(r, imagesDir, kilnVersion, mirror, release)
}

// Newest returns the newest published build of name/version in the catalog
// and its directory, or (nil, "", nil) when there is none.
func Newest(imagesDir, name, version string) (*manifest.Manifest, string, error) {
	vdir := filepath.Join(imagesDir, name, version)
	builds, err := catalog.Builds(vdir)
	if err != nil || len(builds) == 0 {
		return nil, "", err
	}
	dir := filepath.Join(vdir, strconv.Itoa(builds[len(builds)-1]))
	m, err := manifest.Read(dir)
	if err != nil {
		return nil, "", err
	}
	return m, dir, nil
}

// UpToDateResult says whether a recipe needs building.
type UpToDateResult struct {
	UpToDate bool
	Digest   string             // the recipe's inputs digest now
	Newest   *manifest.Manifest // the newest build of the same name and version, if any
	Path     string             // its directory
	Reason   string             // why a build is needed
}

// ErrInputsUnknown wraps the reason the inputs could not be resolved.
var ErrInputsUnknown = errors.New("the inputs cannot be resolved")

// CheckUpToDate compares r's inputs digest with the one recorded by the
// newest published build of the same image name and version. When the inputs
// cannot be resolved (the archive is unreachable) it returns an error that
// wraps ErrInputsUnknown; callers build then, as a build can still go ahead
// from a cached base.
func CheckUpToDate(ctx context.Context, r *recipes.Recipe, imagesDir, kilnVersion string) (*UpToDateResult, error) {
	in, err := ResolveInputs(ctx, r, imagesDir, kilnVersion)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInputsUnknown, err)
	}
	res := &UpToDateResult{Digest: in.Digest()}
	m, dir, err := Newest(imagesDir, r.Image.Name, r.Image.Version)
	if err != nil {
		return nil, err
	}
	res.Newest, res.Path = m, dir
	switch {
	case m == nil:
		res.Reason = fmt.Sprintf("no build of %s %s is published yet", r.Image.Name, r.Image.Version)
	case m.InputsDigest == "":
		res.Reason = fmt.Sprintf("build %d records no inputs digest", m.Build)
	case m.InputsDigest != res.Digest:
		res.Reason = fmt.Sprintf("the inputs changed since build %d", m.Build)
	default:
		res.UpToDate = true
	}
	return res, nil
}
