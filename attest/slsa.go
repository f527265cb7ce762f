package attest

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/kiln-build/kiln/internal/sparse"
	"github.com/kiln-build/kiln/manifest"
)

// The SLSA provenance of a Kiln build, made from its manifest
// (docs/supply-chain.md says what each field holds).

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

// Build is what the provenance says about a build beyond its manifest.
type Build struct {
	RecipePath   string
	RecipeSHA256 string
	Variables    map[string]any // the recipe's variables, sensitive values redacted
	KilnVersion  string
	ReleaseURL   string // the Debian base's InRelease file; "" derives it from the manifest's mirror
	Started      time.Time
}

// BuildStatement is the provenance of the build whose final manifest is m
// and whose files are in dir: its subjects are the disk outputs, the SBOMs
// and manifest.json, with their sha256.
func BuildStatement(dir string, m *manifest.Manifest, b Build) (*Statement, error) {
	names := []string{}
	for _, o := range m.Outputs {
		names = append(names, o.File)
	}
	for _, s := range m.SBOMs {
		names = append(names, s.File)
	}
	names = append(names, manifest.FileName)
	subjects, err := Subjects(dir, names)
	if err != nil {
		return nil, err
	}
	return &Statement{
		Type: StatementType, Subject: subjects, PredicateType: PredicateSLSA1,
		Predicate: Provenance{
			BuildDefinition: BuildDefinition{
				BuildType: BuildType,
				ExternalParameters: externalParameters{Recipe: recipeRef{Path: b.RecipePath, SHA256: b.RecipeSHA256},
					Image: imageRef{Name: m.Name, Version: m.Version}, Variables: b.Variables},
				InternalParameters:   internalParameters{SourceDate: m.SourceDate, InputsDigest: m.InputsDigest, BaseCacheKey: m.Base.CacheKey},
				ResolvedDependencies: resolvedDependencies(m, b),
			},
			RunDetails: RunDetails{
				Builder:  Builder{ID: BuilderID, Version: map[string]string{"kiln": b.KilnVersion}},
				Metadata: BuildMetadata{InvocationID: fmt.Sprintf("%s/%s/%d", m.Name, m.Version, m.Build), StartedOn: b.Started.UTC().Truncate(time.Second), FinishedOn: time.Now().UTC().Truncate(time.Second)},
			},
		},
	}, nil
}

// resolvedDependencies are what the build used: the archive's InRelease
// file, the parent image or disk file, the components, the files the
// recipe references, and Kiln itself.
func resolvedDependencies(m *manifest.Manifest, b Build) []ResourceDescriptor {
	var out []ResourceDescriptor
	if m.Base.ReleaseSHA256 != "" {
		uri := b.ReleaseURL
		if uri == "" {
			uri = strings.TrimRight(m.Base.Mirror, "/") + "/dists/" + m.Base.Suite + "/InRelease"
		}
		out = append(out, ResourceDescriptor{Name: "debian-release", URI: uri, Digest: map[string]string{"sha256": m.Base.ReleaseSHA256},
			Annotations: map[string]any{"suite": m.Base.Suite, "variant": m.Base.Variant, "arch": m.Base.Arch}})
	}
	if p := m.Parent; p != nil {
		d := ResourceDescriptor{Name: "parent-" + p.Kind, Digest: map[string]string{"sha256": p.SHA256}}
		if p.Kind == "image" {
			d.URI = fmt.Sprintf("kiln-catalog:%s@%s/%d", p.Name, p.Version, p.Build)
			d.Annotations = map[string]any{"file": filepath.Base(p.Path)}
		} else if abs, err := filepath.Abs(p.Path); err == nil {
			d.URI = "file://" + abs
		}
		out = append(out, d)
	}
	for _, c := range m.Components {
		d := ResourceDescriptor{Name: "component:" + c.Name, URI: c.Source, Digest: map[string]string{"sha256": strings.TrimPrefix(c.SHA256, "sha256:")},
			Annotations: map[string]any{"version": c.Version}}
		if c.FilesSHA256 != "" {
			d.Annotations["files_sha256"] = c.FilesSHA256
		}
		out = append(out, d)
	}
	if m.Inputs != nil {
		files := make([]string, 0, len(m.Inputs.Files))
		for f := range m.Inputs.Files {
			files = append(files, f)
		}
		sort.Strings(files)
		for _, f := range files {
			out = append(out, ResourceDescriptor{Name: "recipe-file:" + f, URI: "file:" + f, Digest: map[string]string{"sha256": m.Inputs.Files[f]}})
		}
	}
	kiln := ResourceDescriptor{Name: "kiln", URI: "pkg:golang/github.com/kiln-build/kiln@" + b.KilnVersion}
	if exe, err := os.Executable(); err == nil {
		if sum, err := sparse.SHA256(exe); err == nil {
			kiln.Digest = map[string]string{"sha256": sum}
		}
	}
	return append(out, kiln)
}
