package builder

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/kiln-build/kiln/attest"
	"github.com/kiln-build/kiln/base"
	"github.com/kiln-build/kiln/internal/fsroot"
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
	newest, err := fsroot.NewestFileTime(tree)
	if err != nil {
		return manifest.SourceDate{}, err
	}
	return at(newest, manifest.SourceDateTree, "newest modification time of a file in the base tree")
}

// newRedactor hides the recipe's sensitive values.
func newRedactor(r *recipes.Recipe) *redact.Redactor {
	var vals []string
	for _, v := range r.SensitiveValues() {
		vals = append(vals, v)
	}
	return redact.New(recipes.Redacted, vals...)
}

// stageLint fails the build when the tree holds a secret the recipe did
// not allow; it runs after generalise (which removes SSH host keys and
// the like) and before the disk is written.
func stageLint(_ context.Context, s *state) (string, error) {
	rep, err := secrets.Scan(s.tree, secrets.Options{Values: s.recipe.SensitiveValues(), Allow: s.img.Lint.Allow})
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

// writeProvenance writes the provenance over the published files (the
// disk outputs, the SBOMs and manifest.json, which must be final) and,
// with a signing key, the Sigstore bundle over manifest.json.
func writeProvenance(s *state) error {
	st, err := attest.BuildStatement(s.staging.Artifact, s.m, attest.Build{
		RecipePath: s.recipe.Path, RecipeSHA256: s.recipe.SHA256, Variables: s.recipe.PublicVariables(),
		KilnVersion: s.opts.KilnVersion, ReleaseURL: s.releaseURL, Started: s.started,
	})
	if err != nil {
		return err
	}
	return attest.Write(s.staging.Artifact, st, s.opts.SignKey)
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
