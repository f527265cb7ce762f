package attest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kiln-build/kiln/internal/dpkg"
	"github.com/kiln-build/kiln/internal/sparse"
	"github.com/kiln-build/kiln/internal/testutil"
	"github.com/kiln-build/kiln/manifest"
	"github.com/kiln-build/kiln/sbom"
)

func testKey(t *testing.T) *ecdsa.PrivateKey {
	k, err := GenerateKey()
	require.NoError(t, err)
	return k
}

func TestKeysRoundTrip(t *testing.T) {
	k := testKey(t)
	priv, err := MarshalPrivateKey(k)
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(string(priv), "-----BEGIN PRIVATE KEY-----\n"))
	pub, err := MarshalPublicKey(&k.PublicKey)
	require.NoError(t, err)
	k2, err := ParsePrivateKey(priv)
	require.NoError(t, err)
	require.True(t, k.Equal(k2))
	p2, err := ParsePublicKey(pub)
	require.NoError(t, err)
	require.True(t, k.PublicKey.Equal(p2))
	require.Len(t, KeyID(p2), 44)

	_, err = ParsePrivateKey(pub)
	require.ErrorIs(t, err, ErrKey)
	_, err = ParsePublicKey(priv)
	require.ErrorContains(t, err, "give the public half")
	_, err = ParsePrivateKey([]byte("-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n"))
	require.ErrorContains(t, err, "encrypted")
	other, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	data, _ := MarshalPrivateKey(other)
	_, err = ParsePrivateKey(data)
	require.ErrorContains(t, err, "ECDSA on P-384")
	_, err = ParsePublicKey([]byte("nothing"))
	require.ErrorContains(t, err, "no PEM block")
}

func requireOpenSSL(t *testing.T) {
	testutil.Require(t, "openssl")
}

func openssl(t *testing.T, args ...string) string {
	t.Helper()
	return testutil.Run(t, "openssl", args...)
}

// Keys openssl makes, PKCS#8 and SEC 1, sign; keys kiln makes, openssl reads.
func TestOpenSSLKeys(t *testing.T) {
	requireOpenSSL(t)
	dir := t.TempDir()
	pkcs8, sec1 := filepath.Join(dir, "pkcs8.pem"), filepath.Join(dir, "sec1.pem")
	openssl(t, "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", pkcs8)
	openssl(t, "ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", sec1)
	for _, p := range []string{pkcs8, sec1} {
		data, _ := os.ReadFile(p)
		_, err := ParsePrivateKey(data)
		require.NoError(t, err, p)
	}
	k := testKey(t)
	priv, _ := MarshalPrivateKey(k)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "kiln.key"), priv, 0o600))
	require.Contains(t, openssl(t, "pkey", "-in", filepath.Join(dir, "kiln.key"), "-noout", "-text"), "NIST CURVE: P-256")
}

func TestEnvelope(t *testing.T) {
	k := testKey(t)
	payload := []byte(`{"_type":"https://in-toto.io/Statement/v1"}`)
	e, err := Seal(PayloadType, payload, k)
	require.NoError(t, err)
	got, err := e.Open(&k.PublicKey)
	require.NoError(t, err)
	require.Equal(t, payload, got)
	require.Equal(t, KeyID(&k.PublicKey), e.Signatures[0].KeyID)

	_, err = e.Open(&testKey(t).PublicKey)
	require.ErrorIs(t, err, ErrBadSignature)
	require.ErrorContains(t, err, "signed by key "+KeyID(&k.PublicKey))

	tampered := *e
	tampered.Payload = base64.StdEncoding.EncodeToString([]byte(`{"_type":"x"}`))
	_, err = tampered.Open(&k.PublicKey)
	require.ErrorIs(t, err, ErrBadSignature)
	tampered = *e
	tampered.PayloadType = "text/plain"
	_, err = tampered.Open(&k.PublicKey)
	require.ErrorIs(t, err, ErrBadSignature, "the payload type is signed too")

	unsigned, err := Seal(PayloadType, payload, nil)
	require.NoError(t, err)
	_, err = unsigned.Open(&k.PublicKey)
	require.ErrorIs(t, err, ErrUnsigned)
	data, _ := unsigned.Encode()
	require.Contains(t, string(data), `"signatures": []`)

	require.Equal(t, "DSSEv1 28 application/vnd.in-toto+json 2 {}", string(PAE(PayloadType, []byte("{}"))))
}

// openssl verifies a DSSE signature over a PAE it is given, built here
// from the DSSE specification, and the bundle's signature over the file.
func TestOpenSSLVerifiesSignatures(t *testing.T) {
	requireOpenSSL(t)
	dir := t.TempDir()
	k := testKey(t)
	pub, _ := MarshalPublicKey(&k.PublicKey)
	pubPath := filepath.Join(dir, "kiln.pub")
	require.NoError(t, os.WriteFile(pubPath, pub, 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "manifest.json"), []byte(`{"name":"web"}`+"\n"), 0o644))
	st := &Statement{Type: StatementType, PredicateType: PredicateSLSA1, Subject: []Subject{{Name: "manifest.json", Digest: map[string]string{"sha256": "00"}}}}
	require.NoError(t, Write(dir, st, k))

	out, ok, _ := testutil.OpenSSLVerifyDSSE(t, filepath.Join(dir, ProvenanceFile), pubPath)
	require.True(t, ok, out)
	require.Contains(t, out, "Verified OK")
	other := testKey(t)
	otherPub, _ := MarshalPublicKey(&other.PublicKey)
	otherPath := filepath.Join(dir, "other.pub")
	require.NoError(t, os.WriteFile(otherPath, otherPub, 0o644))
	out, ok, _ = testutil.OpenSSLVerifyDSSE(t, filepath.Join(dir, ProvenanceFile), otherPath)
	require.False(t, ok)
	require.Contains(t, out, "Verification failure")

	out, ok = testutil.OpenSSLVerifyBundle(t, filepath.Join(dir, BundleFile), filepath.Join(dir, "manifest.json"), pubPath)
	require.True(t, ok, out)
	require.Contains(t, out, "Verified OK")
	require.NoError(t, os.WriteFile(filepath.Join(dir, "manifest.json"), []byte(`{"name":"wEb"}`+"\n"), 0o644))
	_, ok = testutil.OpenSSLVerifyBundle(t, filepath.Join(dir, BundleFile), filepath.Join(dir, "manifest.json"), pubPath)
	require.False(t, ok, "a changed manifest.json fails")
}

func TestBundle(t *testing.T) {
	k := testKey(t)
	b, err := SignBlob([]byte("hello"), k)
	require.NoError(t, err)
	require.NoError(t, b.Verify([]byte("hello"), &k.PublicKey))
	require.ErrorContains(t, b.Verify([]byte("hellO"), &k.PublicKey), "the file changed after it was signed")
	require.ErrorIs(t, b.Verify([]byte("hello"), &testKey(t).PublicKey), ErrBadSignature)
	data, err := b.Encode()
	require.NoError(t, err)
	var m map[string]any
	require.NoError(t, json.Unmarshal(data, &m))
	require.Equal(t, BundleMediaType, m["mediaType"])
	require.Equal(t, map[string]any{"publicKey": map[string]any{"hint": KeyID(&k.PublicKey)}}, m["verificationMaterial"])
}

// fakeArtifact writes a build directory as the builder does: outputs,
// SBOMs, manifest.json, then the provenance over them.
func fakeArtifact(t *testing.T, key *ecdsa.PrivateKey) string {
	dir := t.TempDir()
	write := func(name, data string) string {
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644))
		sum, err := sparse.SHA256(filepath.Join(dir, name))
		require.NoError(t, err)
		return sum
	}
	m := &manifest.Manifest{SchemaVersion: manifest.SchemaVersion, Name: "web", Version: "1.0.0", Build: 3,
		Packages: []manifest.Package{{Name: "libc6", Version: "2.36-9", Arch: "amd64"}, {Name: "attr", Version: "1:2.5.1-4+b1", Arch: "amd64"}}}
	m.Outputs = []manifest.Output{{File: "web.raw.zst", Format: "raw", SHA256: write("web.raw.zst", "raw disk")},
		{File: "web.qcow2", Format: "qcow2", SHA256: write("web.qcow2", "qcow2 disk")}}
	inv := &sbom.Inventory{Distro: sbom.Distro{ID: "debian", VersionID: "12"}, LicenseRefs: map[string]string{}}
	for _, p := range m.Packages {
		inv.Packages = append(inv.Packages, sbom.Package{Package: dpkg.Package{Name: p.Name, Version: p.Version, Arch: p.Arch}, License: sbom.NoAssertion})
	}
	img := sbom.Image{Name: "web", Version: "1.0.0", Created: time.Unix(1700000000, 0), Tool: "kiln test"}
	for _, o := range m.Outputs {
		img.Files = append(img.Files, sbom.File{Name: o.File, SHA256: o.SHA256})
	}
	spdx, err := sbom.SPDX(img, inv)
	require.NoError(t, err)
	cdx, err := sbom.CycloneDX(img, inv)
	require.NoError(t, err)
	m.SBOMs = []manifest.SBOM{{File: sbom.SPDXFile, Format: sbom.SPDXFormat, SHA256: write(sbom.SPDXFile, string(spdx)), Packages: 2},
		{File: sbom.CycloneDXFile, Format: sbom.CycloneDXFormat, SHA256: write(sbom.CycloneDXFile, string(cdx)), Packages: 2}}
	m.Provenance = manifest.Provenance{File: ProvenanceFile, Signed: key != nil}
	if key != nil {
		m.Provenance.KeyID, m.Provenance.Bundle = KeyID(&key.PublicKey), BundleFile
	}
	require.NoError(t, m.Write(dir))
	write("build.log", "log")
	subjects, err := Subjects(dir, []string{"web.raw.zst", "web.qcow2", sbom.SPDXFile, sbom.CycloneDXFile, manifest.FileName})
	require.NoError(t, err)
	require.NoError(t, Write(dir, &Statement{Type: StatementType, Subject: subjects, PredicateType: PredicateSLSA1}, key))
	return dir
}

func TestVerifyArtifact(t *testing.T) {
	k := testKey(t)
	dir := fakeArtifact(t, k)
	rep, err := VerifyArtifact(dir, &k.PublicKey)
	require.NoError(t, err)
	require.Equal(t, []string{"web.raw.zst", "web.qcow2", sbom.SPDXFile, sbom.CycloneDXFile, manifest.FileName}, rep.Files)
	require.Equal(t, 2, rep.Packages)
	require.True(t, rep.Bundle)
	require.Equal(t, []string{"build.log"}, rep.NotCovered)

	// Another key.
	_, err = VerifyArtifact(dir, &testKey(t).PublicKey)
	var mm *Mismatch
	require.True(t, errors.As(err, &mm), "%v", err)
	require.Equal(t, ProvenanceFile, mm.File)

	// One changed byte in a disk output.
	f, err := os.OpenFile(filepath.Join(dir, "web.qcow2"), os.O_RDWR, 0)
	require.NoError(t, err)
	_, err = f.WriteAt([]byte("Q"), 0)
	require.NoError(t, err)
	f.Close()
	_, err = VerifyArtifact(dir, &k.PublicKey)
	require.True(t, errors.As(err, &mm))
	require.Equal(t, "web.qcow2", mm.File)
	require.Contains(t, mm.Reason, "the signed provenance records")
}

func TestVerifyArtifactMismatches(t *testing.T) {
	k := testKey(t)
	for name, change := range map[string]func(dir string) (file, reason string){
		"unsigned": func(dir string) (string, string) {
			data, _ := os.ReadFile(filepath.Join(dir, ProvenanceFile))
			var e Envelope
			require.NoError(t, json.Unmarshal(data, &e))
			e.Signatures = nil
			data, _ = e.Encode()
			require.NoError(t, os.WriteFile(filepath.Join(dir, ProvenanceFile), data, 0o644))
			return ProvenanceFile, "not signed"
		},
		"manifest changed": func(dir string) (string, string) {
			m, err := manifest.Read(dir)
			require.NoError(t, err)
			m.Packages = m.Packages[:1]
			require.NoError(t, m.Write(dir))
			return manifest.FileName, "the signed provenance records"
		},
		"bundle from another key": func(dir string) (string, string) {
			mf, _ := os.ReadFile(filepath.Join(dir, manifest.FileName))
			b, err := SignBlob(mf, testKey(t))
			require.NoError(t, err)
			data, _ := b.Encode()
			require.NoError(t, os.WriteFile(filepath.Join(dir, BundleFile), data, 0o644))
			return BundleFile, "no signature verifies"
		},
	} {
		t.Run(name, func(t *testing.T) {
			dir := fakeArtifact(t, k)
			file, reason := change(dir)
			_, err := VerifyArtifact(dir, &k.PublicKey)
			var mm *Mismatch
			require.True(t, errors.As(err, &mm), "%v", err)
			require.Equal(t, file, mm.File)
			require.Contains(t, mm.Reason, reason)
		})
	}
}

// An SBOM that disagrees with the manifest is named, even when signed.
func TestVerifySBOMMismatch(t *testing.T) {
	k := testKey(t)
	dir := fakeArtifact(t, k)
	// Re-sign a manifest whose package list differs from the SBOMs'.
	m, err := manifest.Read(dir)
	require.NoError(t, err)
	m.Packages = append(m.Packages, manifest.Package{Name: "zlib1g", Version: "1:1.2.13", Arch: "amd64"})
	require.NoError(t, m.Write(dir))
	subjects, err := Subjects(dir, []string{"web.raw.zst", "web.qcow2", sbom.SPDXFile, sbom.CycloneDXFile, manifest.FileName})
	require.NoError(t, err)
	require.NoError(t, Write(dir, &Statement{Type: StatementType, Subject: subjects, PredicateType: PredicateSLSA1}, k))
	_, err = VerifyArtifact(dir, &k.PublicKey)
	require.EqualError(t, err, "sbom.spdx.json: does not list zlib1g 1:1.2.13 (amd64), which manifest.json lists")
}
