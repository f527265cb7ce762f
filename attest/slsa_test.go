package attest

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kiln-build/kiln/internal/sparse"
	"github.com/kiln-build/kiln/manifest"
)

// The statement of a build names every output, SBOM and manifest.json with
// its sha256, the recipe and public variables as the external parameters,
// and the archive, components, recipe files and Kiln as what it used.
func TestBuildStatement(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"web.qcow2", "sbom.spdx.json", manifest.FileName} {
		require.NoError(t, os.WriteFile(filepath.Join(dir, f), []byte("content of "+f), 0o644))
	}
	m := &manifest.Manifest{Name: "web", Version: "1.2.0", Build: 7,
		Outputs:    []manifest.Output{{File: "web.qcow2"}},
		SBOMs:      []manifest.SBOM{{File: "sbom.spdx.json"}},
		SourceDate: manifest.SourceDate{Epoch: 1700000000, From: manifest.SourceDateDebian},
		Base:       manifest.Base{Suite: "trixie", Mirror: "http://mirror.example/debian/", Variant: "minbase", Arch: "amd64", ReleaseSHA256: "ab12", CacheKey: "ck"},
		Components: []manifest.Component{{Name: "nginx", Version: "1.0.0", Source: "builtin", SHA256: "sha256:cd34", FilesSHA256: "ef56"}},
		Inputs:     &manifest.Inputs{Files: map[string]string{"scripts/b.sh": "22", "scripts/a.sh": "11"}},
	}
	started := time.Date(2026, 12, 7, 3, 0, 0, 500, time.UTC)
	st, err := BuildStatement(dir, m, Build{RecipePath: "web.hcl", RecipeSHA256: "99", Variables: map[string]any{"token": "(sensitive)"},
		KilnVersion: "0.9.0", Started: started})
	require.NoError(t, err)

	require.Equal(t, StatementType, st.Type)
	require.Equal(t, PredicateSLSA1, st.PredicateType)
	var names []string
	for _, s := range st.Subject {
		names = append(names, s.Name)
		sum, err := sparse.SHA256(filepath.Join(dir, s.Name))
		require.NoError(t, err)
		require.Equal(t, sum, s.Digest["sha256"], s.Name)
	}
	require.Equal(t, []string{"web.qcow2", "sbom.spdx.json", manifest.FileName}, names)

	def := st.Predicate.BuildDefinition
	require.Equal(t, externalParameters{Recipe: recipeRef{Path: "web.hcl", SHA256: "99"}, Image: imageRef{Name: "web", Version: "1.2.0"},
		Variables: map[string]any{"token": "(sensitive)"}}, def.ExternalParameters)
	require.Equal(t, internalParameters{SourceDate: m.SourceDate, BaseCacheKey: "ck"}, def.InternalParameters)
	var deps []string
	for _, d := range def.ResolvedDependencies {
		deps = append(deps, d.Name+" "+d.URI)
	}
	require.Equal(t, []string{
		"debian-release http://mirror.example/debian/dists/trixie/InRelease",
		"component:nginx builtin",
		"recipe-file:scripts/a.sh file:scripts/a.sh",
		"recipe-file:scripts/b.sh file:scripts/b.sh",
		"kiln pkg:golang/github.com/kiln-build/kiln@0.9.0",
	}, deps)
	require.Equal(t, map[string]string{"sha256": "cd34"}, def.ResolvedDependencies[1].Digest, "the component's digest without its prefix")
	require.Equal(t, "web/1.2.0/7", st.Predicate.RunDetails.Metadata.InvocationID)
	require.Equal(t, started.Truncate(time.Second), st.Predicate.RunDetails.Metadata.StartedOn)
}
