package builder

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/kiln-build/kiln/attest"
	"github.com/kiln-build/kiln/base"
	"github.com/kiln-build/kiln/internal/redact"
	"github.com/kiln-build/kiln/internal/sparse"
	"github.com/kiln-build/kiln/manifest"
	"github.com/kiln-build/kiln/recipes"
	"github.com/kiln-build/kiln/sbom"
	"github.com/kiln-build/kiln/secrets"
)

// The supply-chain parts of a build: its source date, the secret lint,
// the SBOMs, the provenance, and keeping sensitive values out of
// everything it writes (docs/supply-chain.md).

// resolveSourceDate picks the time stamped on every file of the disk and on
// the SBOMs: SOURCE_DATE_EPOCH when set; else the Date of the archive's
// InRelease file the Debian base came from; else the parent image's source
// date; else (a disk file base, or an older parent or cache entry) the
// newest modification time of a regular file in the base tree, which the
// base's bytes decide. Each is a property of the inputs, never of the
// clock, so two builds of one recipe on one base write the same disk.
func resolveSourceDate(epoch int64, tree string, deb *base.Result, parent *manifest.Parent) (manifest.SourceDate, error) {
	at := func(sec int64, from, detail string) (manifest.SourceDate, error) {
		return manifest.SourceDate{Epoch: sec, Time: time.Unix(sec, 0).UTC(), From: from, Detail: detail}, nil
	}
	switch {
	case epoch > 0:
		return at(epoch, manifest.SourceDateEnv, "SOURCE_DATE_EPOCH="+strconv.FormatInt(epoch, 10))
	case deb != nil && !deb.ReleaseDate.IsZero():
		return at(deb.ReleaseDate.Unix(), manifest.SourceDateDebian, "Date of "+deb.ReleaseURL)
	case parent != nil && parent.Kind == "image":
		if pm, err := manifest.Read(filepath.Dir(parent.Path)); err == nil && pm.SourceDate.Epoch > 0 {
			return at(pm.SourceDate.Epoch, manifest.SourceDateParent, fmt.Sprintf("source date of %s/%s/%d", parent.Name, parent.Version, parent.Build))
		}
	}
	newest, err := newestFileTime(tree)
	if err != nil {
		return manifest.SourceDate{}, err
	}
	return at(newest, manifest.SourceDateTree, "newest modification time of a file in the base tree")
}

// newestFileTime is the newest mtime of a regular file in tree, ignoring
// times in the future. Directories, links and device nodes are left out:
// extracting a base makes some of them anew.
func newestFileTime(tree string) (int64, error) {
	now := time.Now().Unix()
	var newest int64 = 1
	err := filepath.WalkDir(tree, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if t := fi.ModTime().Unix(); t > newest && t <= now {
			newest = t
		}
		return nil
	})
	return newest, err
}

// sensitiveValues are the string values of the recipe's sensitive
// variables (of each element of a list or map too), by variable name.
func sensitiveValues(r *recipes.Recipe) map[string]string {
	out := map[string]string{}
	var walk func(name string, v any)
	walk = func(name string, v any) {
		switch x := v.(type) {
		case string:
			out[name] = x
		case []any:
			for i, e := range x {
				walk(fmt.Sprintf("%s[%d]", name, i), e)
			}
		case map[string]any:
			for k, e := range x {
				walk(name+"."+k, e)
			}
		case nil:
		default:
			out[name] = fmt.Sprint(x)
		}
	}
	for name := range r.Sensitive {
		walk(name, r.Variables[name])
	}
	return out
}

// newRedactor hides the recipe's sensitive values.
func newRedactor(r *recipes.Recipe) *redact.Redactor {
	var vals []string
	for _, v := range sensitiveValues(r) {
		vals = append(vals, v)
	}
	return redact.New(recipes.Redacted, vals...)
}

// stageLint fails the build when the tree holds a secret the recipe did
// not allow; it runs after generalise (which removes SSH host keys and
// the like) and before the disk is written.
func stageLint(_ context.Context, s *state) (string, error) {
	rep, err := secrets.Scan(s.tree, secrets.Options{Values: sensitiveValues(s.recipe), Allow: s.img.Lint.Allow})
	if err != nil {
		return "", err
	}
	s.m.Lint = manifest.Lint{Allow: s.img.Lint.Allow, Allowed: []manifest.LintFinding{}, Files: rep.Files}
	for _, f := range rep.Allowed {
		s.m.Lint.Allowed = append(s.m.Lint.Allowed, manifest.LintFinding{Path: f.Path, What: f.What})
		fmt.Fprintf(s.log, "secret lint: %s (allowed by lint.allow)\n", f)
	}
	for _, name := range rep.Short {
		fmt.Fprintf(s.log, "secret lint: var.%s is shorter than %d characters; the lint does not look for it in the tree\n", name, secrets.MinValueLen)
	}
	fmt.Fprintf(s.log, "secret lint: %d files read, %d hits in files Debian packages ship unchanged (not secrets)\n", rep.Files, rep.PackageFiles)
	if len(rep.Findings) > 0 {
		var b strings.Builder
		fmt.Fprintf(&b, "the image holds %d secret(s):\n", len(rep.Findings))
		for _, f := range rep.Findings {
			fmt.Fprintf(&b, "  %s\n", f)
		}
		fmt.Fprintf(&b, "remove them in a build step, or accept a path in the image block: lint { allow = [%q] }", rep.Findings[0].Path)
		return "", fmt.Errorf("%s", b.String())
	}
	return fmt.Sprintf("%d files, %d allowed", rep.Files, len(rep.Allowed)), nil
}

// treeInventory reads what the tree holds, once, for the manifest's
// package list and the SBOMs.
func treeInventory(s *state) error {
	inv, err := sbom.Read(s.tree)
	if err != nil {
		return err
	}
	s.inventory = inv
	s.m.Packages = make([]manifest.Package, 0, len(inv.Packages))
	for _, p := range inv.Packages {
		s.m.Packages = append(s.m.Packages, manifest.Package{Name: p.Name, Version: p.Version, Arch: p.Arch})
	}
	return nil
}

// stageSBOM writes the SBOMs: the packages read before the disk stage,
// and the disk outputs with their sha256.
func stageSBOM(_ context.Context, s *state) (string, error) {
	img := sbom.Image{Name: s.img.Name, Version: s.img.Version, Created: s.m.SourceDate.Time, Tool: "kiln " + s.opts.KilnVersion}
	for _, o := range s.m.Outputs {
		img.Files = append(img.Files, sbom.File{Name: o.File, SHA256: o.SHA256})
	}
	s.m.SBOMs = []manifest.SBOM{}
	for _, doc := range []struct {
		file, format string
		make         func(sbom.Image, *sbom.Inventory) ([]byte, error)
	}{
		{sbom.SPDXFile, sbom.SPDXFormat, sbom.SPDX},
		{sbom.CycloneDXFile, sbom.CycloneDXFormat, sbom.CycloneDX},
	} {
		data, err := doc.make(img, s.inventory)
		if err != nil {
			return "", fmt.Errorf("%s: %w", doc.file, err)
		}
		path := filepath.Join(s.staging.Artifact, doc.file)
		if err := os.WriteFile(path, data, 0o644); err != nil {
			return "", err
		}
		sum, err := sparse.SHA256(path)
		if err != nil {
			return "", err
		}
		s.m.SBOMs = append(s.m.SBOMs, manifest.SBOM{File: doc.file, Format: doc.format, SHA256: sum, Packages: len(s.inventory.Packages)})
	}
	return fmt.Sprintf("%d packages", len(s.inventory.Packages)), nil
}

// provenanceRecord is what the manifest says about the provenance files
// before they exist.
func provenanceRecord(o Options) manifest.Provenance {
	p := manifest.Provenance{File: attest.ProvenanceFile}
	if o.SignKey != nil {
		p.Signed, p.KeyID, p.Bundle = true, attest.KeyID(&o.SignKey.PublicKey), attest.BundleFile
	}
	return p
}

// externalParameters are what the person asked for (the buildType's
// external parameters, docs/supply-chain.md).
type externalParameters struct {
	Recipe    recipeRef      `json:"recipe"`
	Image     imageRef       `json:"image"`
	Variables map[string]any `json:"variables"`
}

type recipeRef struct {
	Path   string `json:"path"`
	SHA256 string `json:"sha256"`
}

type imageRef struct {
	Name    string `json:"name"`
	Version string `json:"version"`
}

// internalParameters are what Kiln decided.
type internalParameters struct {
	SourceDate   manifest.SourceDate `json:"source_date"`
	InputsDigest string              `json:"inputs_digest,omitempty"`
	BaseCacheKey string              `json:"base_cache_key,omitempty"`
}

// writeProvenance writes the provenance over the published files (the
// disk outputs, the SBOMs and manifest.json, which must be final) and,
// with a signing key, the Sigstore bundle over manifest.json.
func writeProvenance(s *state) error {
	names := []string{}
	for _, o := range s.m.Outputs {
		names = append(names, o.File)
	}
	for _, b := range s.m.SBOMs {
		names = append(names, b.File)
	}
	names = append(names, manifest.FileName)
	subjects, err := attest.Subjects(s.staging.Artifact, names)
	if err != nil {
		return err
	}
	st := &attest.Statement{
		Type: attest.StatementType, Subject: subjects, PredicateType: attest.PredicateSLSA1,
		Predicate: attest.Provenance{
			BuildDefinition: attest.BuildDefinition{
				BuildType: attest.BuildType,
				ExternalParameters: externalParameters{Recipe: recipeRef{Path: s.recipe.Path, SHA256: s.recipe.SHA256},
					Image: imageRef{Name: s.img.Name, Version: s.img.Version}, Variables: s.recipe.PublicVariables()},
				InternalParameters:   internalParameters{SourceDate: s.m.SourceDate, InputsDigest: s.m.InputsDigest, BaseCacheKey: s.m.Base.CacheKey},
				ResolvedDependencies: resolvedDependencies(s),
			},
			RunDetails: attest.RunDetails{
				Builder:  attest.Builder{ID: attest.BuilderID, Version: map[string]string{"kiln": s.opts.KilnVersion}},
				Metadata: attest.BuildMetadata{InvocationID: fmt.Sprintf("%s/%s/%d", s.img.Name, s.img.Version, s.m.Build), StartedOn: s.started.UTC().Truncate(time.Second), FinishedOn: time.Now().UTC().Truncate(time.Second)},
			},
		},
	}
	return attest.Write(s.staging.Artifact, st, s.opts.SignKey)
}

// resolvedDependencies are what the build used: the archive's InRelease
// file, the parent image or disk file, the components, the files the
// recipe references, and Kiln itself.
func resolvedDependencies(s *state) []attest.ResourceDescriptor {
	var out []attest.ResourceDescriptor
	if s.m.Base.ReleaseSHA256 != "" {
		uri := s.releaseURL
		if uri == "" {
			uri = strings.TrimRight(s.m.Base.Mirror, "/") + "/dists/" + s.m.Base.Suite + "/InRelease"
		}
		out = append(out, attest.ResourceDescriptor{Name: "debian-release", URI: uri, Digest: map[string]string{"sha256": s.m.Base.ReleaseSHA256},
			Annotations: map[string]any{"suite": s.m.Base.Suite, "variant": s.m.Base.Variant, "arch": s.m.Base.Arch}})
	}
	if p := s.m.Parent; p != nil {
		d := attest.ResourceDescriptor{Name: "parent-" + p.Kind, Digest: map[string]string{"sha256": p.SHA256}}
		if p.Kind == "image" {
			d.URI = fmt.Sprintf("kiln-catalog:%s@%s/%d", p.Name, p.Version, p.Build)
			d.Annotations = map[string]any{"file": filepath.Base(p.Path)}
		} else if abs, err := filepath.Abs(p.Path); err == nil {
			d.URI = "file://" + abs
		}
		out = append(out, d)
	}
	for _, c := range s.m.Components {
		d := attest.ResourceDescriptor{Name: "component:" + c.Name, URI: c.Source, Digest: map[string]string{"sha256": strings.TrimPrefix(c.SHA256, "sha256:")},
			Annotations: map[string]any{"version": c.Version}}
		if c.FilesSHA256 != "" {
			d.Annotations["files_sha256"] = c.FilesSHA256
		}
		out = append(out, d)
	}
	if s.m.Inputs != nil {
		files := make([]string, 0, len(s.m.Inputs.Files))
		for f := range s.m.Inputs.Files {
			files = append(files, f)
		}
		sort.Strings(files)
		for _, f := range files {
			out = append(out, attest.ResourceDescriptor{Name: "recipe-file:" + f, URI: "file:" + f, Digest: map[string]string{"sha256": s.m.Inputs.Files[f]}})
		}
	}
	kiln := attest.ResourceDescriptor{Name: "kiln", URI: "pkg:golang/github.com/kiln-build/kiln@" + s.opts.KilnVersion}
	if exe, err := os.Executable(); err == nil {
		if sum, err := sparse.SHA256(exe); err == nil {
			kiln.Digest = map[string]string{"sha256": sum}
		}
	}
	return append(out, kiln)
}

// redactRecord hides sensitive values that reached the manifest through
// anything but the variables (which are redacted already): a component
// parameter set from one, a test's output excerpt.
func (s *state) redactRecord() error {
	if s.redactor.Empty() {
		return nil
	}
	data, err := s.m.Encode()
	if err != nil || !s.redactor.Contains(data) {
		return err
	}
	m, err := manifest.Decode(s.redactor.Bytes(data))
	if err != nil {
		return err
	}
	*s.m = *m
	return nil
}

// redactFiles hides sensitive values in the artifact's text files that
// Kiln does not write through the log's redactor: the console logs and
// tests.xml.
func (s *state) redactFiles() error {
	for _, f := range s.files.logs() {
		if f == s.files.buildLog {
			continue
		}
		if err := s.redactor.File(filepath.Join(s.staging.Artifact, f)); err != nil {
			return err
		}
	}
	return nil
}
