package attest

import (
	"crypto/ecdsa"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/kiln-build/kiln/internal/sparse"
	"github.com/kiln-build/kiln/manifest"
	"github.com/kiln-build/kiln/sbom"
)

// Mismatch is the first thing VerifyArtifact found wrong, naming the file.
type Mismatch struct {
	File   string
	Reason string
}

func (m *Mismatch) Error() string { return m.File + ": " + m.Reason }

func mismatch(file, format string, args ...any) error {
	return &Mismatch{File: file, Reason: fmt.Sprintf(format, args...)}
}

// Report is what VerifyArtifact checked.
type Report struct {
	Dir      string   `json:"dir"`
	Name     string   `json:"name"`
	Version  string   `json:"version"`
	Build    int      `json:"build"`
	KeyID    string   `json:"key_id"`
	Files    []string `json:"files"`    // every subject, with its sha256 checked
	Packages int      `json:"packages"` // listed identically by the manifest and each SBOM
	Bundle   bool     `json:"sigstore_bundle_verified"`
	// NotCovered are files of the build that nothing signs: logs, test
	// reports and the catalog's state, which changes after publishing.
	NotCovered []string `json:"not_covered"`
}

// VerifyArtifact checks a published build directory against pub: the
// DSSE signature of its provenance, that every subject's sha256 matches
// the file, that every disk output, SBOM and manifest.json is a subject
// and matches what the manifest records, that each SBOM lists exactly the
// manifest's packages and disk files, and the Sigstore bundle over
// manifest.json. The first mismatch is returned as a *Mismatch.
func VerifyArtifact(dir string, pub *ecdsa.PublicKey) (*Report, error) {
	m, err := manifest.Read(dir)
	if err != nil {
		return nil, mismatch(manifest.FileName, "%v", err)
	}
	rep := &Report{Dir: dir, Name: m.Name, Version: m.Version, Build: m.Build, KeyID: KeyID(pub)}
	provFile := m.Provenance.File
	if provFile == "" {
		return nil, mismatch(ProvenanceFile, "the manifest names no provenance: the build was made by a Kiln without supply-chain files")
	}
	data, err := os.ReadFile(filepath.Join(dir, provFile))
	if err != nil {
		return nil, mismatch(provFile, "%v", err)
	}
	var env Envelope
	if err := json.Unmarshal(data, &env); err != nil {
		return nil, mismatch(provFile, "not a DSSE envelope: %v", err)
	}
	if env.PayloadType != PayloadType {
		return nil, mismatch(provFile, "payload type %q, not %q", env.PayloadType, PayloadType)
	}
	payload, err := env.Open(pub)
	if errors.Is(err, ErrUnsigned) {
		return nil, mismatch(provFile, "the build is not signed (kiln build --sign-key signs it)")
	}
	if err != nil {
		return nil, mismatch(provFile, "%v", err)
	}
	var st Statement
	if err := json.Unmarshal(payload, &st); err != nil {
		return nil, mismatch(provFile, "the payload is not an in-toto statement: %v", err)
	}
	if st.Type != StatementType || st.PredicateType != PredicateSLSA1 {
		return nil, mismatch(provFile, "statement type %q with predicate %q, not %q with %q", st.Type, st.PredicateType, StatementType, PredicateSLSA1)
	}

	// Every subject matches its file.
	subjects := map[string]string{}
	for _, s := range st.Subject {
		if s.Name != filepath.Base(s.Name) || strings.HasPrefix(s.Name, ".") {
			return nil, mismatch(provFile, "subject %q is not a file of the build", s.Name)
		}
		want := s.Digest["sha256"]
		got, err := sparse.SHA256(filepath.Join(dir, s.Name))
		if err != nil {
			return nil, mismatch(s.Name, "%v", err)
		}
		if got != want {
			return nil, mismatch(s.Name, "sha256 %s, but the signed provenance records %s", got, want)
		}
		subjects[s.Name] = got
		rep.Files = append(rep.Files, s.Name)
	}
	// ... and covers every file that matters, as the manifest records it.
	need := func(file, recorded string) error {
		got, ok := subjects[file]
		if !ok {
			return mismatch(file, "not a subject of the signed provenance")
		}
		if recorded != "" && recorded != got {
			return mismatch(file, "sha256 %s, but manifest.json records %s", got, recorded)
		}
		return nil
	}
	if err := need(manifest.FileName, ""); err != nil {
		return nil, err
	}
	outputs := map[string]string{}
	for _, o := range m.Outputs {
		if err := need(o.File, o.SHA256); err != nil {
			return nil, err
		}
		outputs[o.File] = o.SHA256
	}
	if len(m.SBOMs) == 0 {
		return nil, mismatch(manifest.FileName, "lists no SBOM")
	}
	want := make([]sbom.Listed, len(m.Packages))
	for i, p := range m.Packages {
		want[i] = sbom.Listed{Name: p.Name, Version: p.Version, Arch: p.Arch}
	}
	sort.Slice(want, func(i, j int) bool {
		if want[i].Name != want[j].Name {
			return want[i].Name < want[j].Name
		}
		return want[i].Arch < want[j].Arch
	})
	for _, s := range m.SBOMs {
		if err := need(s.File, s.SHA256); err != nil {
			return nil, err
		}
		data, err := os.ReadFile(filepath.Join(dir, s.File))
		if err != nil {
			return nil, mismatch(s.File, "%v", err)
		}
		c, err := sbom.Parse(data)
		if err != nil {
			return nil, mismatch(s.File, "%v", err)
		}
		if c.Format != s.Format {
			return nil, mismatch(s.File, "a %s document, but manifest.json records %s", c.Format, s.Format)
		}
		if err := samePackages(want, c.Packages); err != nil {
			return nil, mismatch(s.File, "%v", err)
		}
		files := map[string]string{}
		for _, f := range c.Files {
			files[f.Name] = f.SHA256
		}
		for name, sum := range outputs {
			if files[name] != sum {
				return nil, mismatch(s.File, "lists %s with sha256 %q, but manifest.json records %s", name, files[name], sum)
			}
		}
		if len(files) != len(outputs) {
			return nil, mismatch(s.File, "lists %d disk file(s), manifest.json %d", len(files), len(outputs))
		}
	}
	rep.Packages = len(want)

	// The Sigstore bundle over manifest.json.
	if m.Provenance.Bundle != "" {
		data, err := os.ReadFile(filepath.Join(dir, m.Provenance.Bundle))
		if err != nil {
			return nil, mismatch(m.Provenance.Bundle, "%v", err)
		}
		var b Bundle
		if err := json.Unmarshal(data, &b); err != nil {
			return nil, mismatch(m.Provenance.Bundle, "not a Sigstore bundle: %v", err)
		}
		mf, err := os.ReadFile(filepath.Join(dir, manifest.FileName))
		if err != nil {
			return nil, mismatch(manifest.FileName, "%v", err)
		}
		if err := b.Verify(mf, pub); err != nil {
			return nil, mismatch(m.Provenance.Bundle, "%v", err)
		}
		rep.Bundle = true
	}

	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	for _, e := range entries {
		n := e.Name()
		if _, ok := subjects[n]; !ok && n != provFile && n != m.Provenance.Bundle && !strings.HasPrefix(n, ".") {
			rep.NotCovered = append(rep.NotCovered, n)
		}
	}
	return rep, nil
}

// samePackages names the first package one list has and the other lacks.
func samePackages(manifestList, sbomList []sbom.Listed) error {
	in := func(l []sbom.Listed) map[sbom.Listed]bool {
		m := map[sbom.Listed]bool{}
		for _, p := range l {
			m[p] = true
		}
		return m
	}
	a, b := in(manifestList), in(sbomList)
	for _, p := range manifestList {
		if !b[p] {
			return fmt.Errorf("does not list %s %s (%s), which manifest.json lists", p.Name, p.Version, p.Arch)
		}
	}
	for _, p := range sbomList {
		if !a[p] {
			return fmt.Errorf("lists %s %s (%s), which manifest.json does not", p.Name, p.Version, p.Arch)
		}
	}
	if len(manifestList) != len(sbomList) {
		return fmt.Errorf("lists %d packages, manifest.json %d", len(sbomList), len(manifestList))
	}
	return nil
}
