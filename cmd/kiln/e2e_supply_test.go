package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kiln-build/kiln/internal/testutil"
	"github.com/kiln-build/kiln/manifest"
)

// supplySecret is the value of the sensitive variable of the supply-chain
// tests: it must appear in no file of an artifact, no log and no output.
const supplySecret = "kiln-e2e-s3cret-7f3a9c41"

// writeSupplyRecipe writes a bookworm recipe (the base the other tests
// use) with a sensitive variable that a build step and a test echo, and
// body in the image block.
func writeSupplyRecipe(t *testing.T, name, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name+".hcl")
	text := `variable "api_token" {
  sensitive   = true
  description = "given with -var; shows as (sensitive)"
}
image "` + name + `" {
  version = "1.0.0"
  base "debian" { suite = "bookworm" }
  boot { firmware = "uefi" }
  disk { size = "2GiB" }
  build "shell" "use-token" {
    inline = [
      "echo \"configuring with ${var.api_token}\"",
      "printf %s '${var.api_token}' | sha256sum | cut -c1-16 > /etc/token.sum",
    ]
  }
` + body + "\n}\n"
	require.NoError(t, os.WriteFile(p, []byte(text), 0o644))
	return p
}

// containsSecret says whether the file holds supplySecret, read in chunks.
func containsSecret(t *testing.T, path string) bool {
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	buf := make([]byte, 8<<20)
	keep := len(supplySecret) - 1
	var tail []byte
	for {
		n, err := f.Read(buf)
		chunk := append(tail, buf[:n]...)
		if bytes.Contains(chunk, []byte(supplySecret)) {
			return true
		}
		if len(chunk) > keep {
			tail = append([]byte(nil), chunk[len(chunk)-keep:]...)
		}
		if err == io.EOF {
			return false
		}
		require.NoError(t, err)
	}
}

// One signed build serves every supply-chain check: the SBOMs pass their
// official schemas and list the manifest's packages; kiln verify --key
// accepts the build, by directory and by reference, and rejects another
// key and a changed byte in a disk output; openssl verifies the DSSE
// signature and the bundle's; the sensitive value is in no file of the
// artifact (the disks included), not in build.log, the console, --json or
// --verbose; the lint accepted the allowed key and the manifest says so.
func TestE2ESupply(t *testing.T) {
	requireE2E(t)
	testutil.Require(t, "openssl")
	images, keys := t.TempDir(), t.TempDir()
	for _, k := range []string{"release", "other"} {
		code, _, errOut := runKiln(t, "keygen", filepath.Join(keys, k))
		require.Equal(t, 0, code, errOut)
	}
	pub, otherPub := filepath.Join(keys, "release.pub"), filepath.Join(keys, "other.pub")
	recipe := writeSupplyRecipe(t, "supply", `  build "shell" "allowed-key" {
    inline = [
      "mkdir -p /etc/kiln-test",
      "printf -- '-----BEGIN PRIVATE KEY-----\\n%s\\n-----END PRIVATE KEY-----\\n' \"$(head -c 120 /dev/urandom | base64 -w0)\" > /etc/kiln-test/demo.key",
    ]
  }
  lint { allow = ["/etc/kiln-test/*.key"] }
  test "shell" "token-is-hashed" {
    inline = ["echo \"guest says ${var.api_token}\"", "test -s /etc/token.sum"]
  }
  output { formats = ["raw", "qcow2"] }`)

	code, out, errOut := runKiln(t, "build", "--json", "--verbose", "--sign-key", filepath.Join(keys, "release.key"),
		"--images", images, "--cache", sharedCache(t), "-var", "api_token="+supplySecret, recipe)
	require.Equal(t, 0, code, "stdout:\n%s\nstderr:\n%s", out, errOut)
	require.NotContains(t, out, supplySecret, "--json")
	require.NotContains(t, errOut, supplySecret, "the console (--verbose copies the build log)")
	require.Contains(t, errOut, "configuring with (sensitive)", "the step's output is in the console, redacted")
	var res struct{ Path string }
	require.NoError(t, json.Unmarshal([]byte(out), &res))
	dir := res.Path
	m := readManifest(t, dir)
	requireGoldenKeys(t, dir)

	// The sensitive value: nowhere in the artifact, the disks included.
	raw := decompressed(t, filepath.Join(dir, m.Outputs[0].File))
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
		require.False(t, containsSecret(t, filepath.Join(dir, e.Name())), "%s holds the sensitive value", e.Name())
	}
	require.False(t, containsSecret(t, raw), "the decompressed raw disk holds the sensitive value")
	for _, f := range []string{"manifest.json", "build.log", "serial.log", "tests.xml", "sbom.spdx.json", "sbom.cdx.json",
		"provenance.dsse.json", "manifest.json.sigstore.json", "supply.raw.zst", "supply.qcow2"} {
		require.Contains(t, names, f)
	}
	buildLog, _ := os.ReadFile(filepath.Join(dir, "build.log"))
	require.Contains(t, string(buildLog), "configuring with (sensitive)")
	junit, _ := os.ReadFile(filepath.Join(dir, "tests.xml"))
	require.Contains(t, string(junit), "guest says (sensitive)", "the guest printed it; tests.xml hides it")
	require.Equal(t, recipesRedacted, m.Recipe.Variables["api_token"])
	require.True(t, strings.HasPrefix(m.Inputs.Variables["api_token"].(string), recipesRedacted+" hmac-sha256:"))

	// The lint accepted the allowed key, and said so.
	require.Equal(t, []string{"/etc/kiln-test/*.key"}, m.Lint.Allow)
	require.Equal(t, []manifest.LintFinding{{Path: "/etc/kiln-test/demo.key", What: "private key (PEM PRIVATE KEY)"}}, m.Lint.Allowed)
	require.Greater(t, m.Lint.Files, 5000)
	require.Equal(t, manifest.SourceDateDebian, m.SourceDate.From)

	// Both SBOMs pass their official schemas and list exactly the manifest's packages.
	for file, schema := range map[string]string{"sbom.spdx.json": "spdx-schema-2.3.json", "sbom.cdx.json": "bom-1.6.schema.json"} {
		testutil.ValidateJSONSchema(t, filepath.Join("../../sbom/testdata/schemas", schema), filepath.Join(dir, file))
	}
	requireSBOMsCoverManifest(t, dir, m)

	// kiln verify: by directory and by reference; another key is refused.
	code, out, errOut = runKiln(t, "verify", "--key", pub, dir)
	require.Equal(t, 0, code, "stdout:\n%s\nstderr:\n%s", out, errOut)
	require.Contains(t, out, "supply/1.0.0/1: verified")
	code, out, errOut = runKiln(t, "verify", "--key", pub, "--images", images, "supply@1.0.0/1")
	require.Equal(t, 0, code, "stdout:\n%s\nstderr:\n%s", out, errOut)
	code, _, errOut = runKiln(t, "verify", "--key", otherPub, dir)
	require.Equal(t, 1, code)
	require.Contains(t, errOut, "provenance.dsse.json: no signature verifies with the key")

	// openssl, not Kiln, checks both signatures.
	opensslVerify(t, dir, pub)
	if cosign := os.Getenv("KILN_COSIGN"); cosign != "" {
		cosignVerify(t, cosign, dir, pub)
	}

	// One changed byte in a disk output is found and named.
	qcow := filepath.Join(dir, "supply.qcow2")
	f, err := os.OpenFile(qcow, os.O_RDWR, 0)
	require.NoError(t, err)
	fi, _ := f.Stat()
	b := []byte{0}
	_, err = f.ReadAt(b, fi.Size()/2)
	require.NoError(t, err)
	b[0] ^= 0xff
	_, err = f.WriteAt(b, fi.Size()/2)
	require.NoError(t, err)
	require.NoError(t, f.Close())
	code, _, errOut = runKiln(t, "verify", "--key", pub, dir)
	require.Equal(t, 1, code)
	require.Contains(t, errOut, "supply.qcow2: sha256 ")
	require.Contains(t, errOut, "but the signed provenance records")
}

// recipesRedacted is what a sensitive value shows as.
const recipesRedacted = "(sensitive)"

// requireSBOMsCoverManifest reads both SBOMs as plain JSON (not with
// Kiln's parser) and checks that each names exactly the manifest's
// packages, by PURLs of the form pkg:deb/debian/NAME@VERSION?arch=ARCH&distro=debian-12.
func requireSBOMsCoverManifest(t *testing.T, dir string, m *manifest.Manifest) {
	want := map[string]bool{}
	for _, p := range m.Packages {
		want[p.Name+"@"+p.Version+" "+p.Arch] = true
	}
	key := func(purl string) string {
		rest, ok := strings.CutPrefix(purl, "pkg:deb/debian/")
		require.True(t, ok, purl)
		nv, q, _ := strings.Cut(rest, "?")
		require.NotContains(t, nv, "+", "%s: + is percent-encoded", purl)
		nv, err := url.PathUnescape(nv)
		require.NoError(t, err)
		vals, err := url.ParseQuery(q)
		require.NoError(t, err)
		require.Equal(t, "debian-12", vals.Get("distro"), purl)
		return nv + " " + vals.Get("arch")
	}
	var spdx struct {
		Packages []struct {
			ExternalRefs []struct{ ReferenceType, ReferenceLocator string } `json:"externalRefs"`
		} `json:"packages"`
	}
	data, err := os.ReadFile(filepath.Join(dir, "sbom.spdx.json"))
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(data, &spdx))
	got := map[string]bool{}
	for _, p := range spdx.Packages {
		for _, r := range p.ExternalRefs {
			if r.ReferenceType == "purl" {
				got[key(r.ReferenceLocator)] = true
			}
		}
	}
	require.Equal(t, want, got, "sbom.spdx.json lists the manifest's packages")
	var cdx struct {
		Components []struct{ Purl string } `json:"components"`
	}
	data, err = os.ReadFile(filepath.Join(dir, "sbom.cdx.json"))
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(data, &cdx))
	got = map[string]bool{}
	for _, c := range cdx.Components {
		got[key(c.Purl)] = true
	}
	require.Equal(t, want, got, "sbom.cdx.json lists the manifest's packages")
}

// opensslVerify checks the DSSE signature and the bundle's with openssl.
func opensslVerify(t *testing.T, dir, pub string) {
	out, ok, payload := testutil.OpenSSLVerifyDSSE(t, filepath.Join(dir, "provenance.dsse.json"), pub)
	require.True(t, ok, out)
	require.Contains(t, out, "Verified OK")
	var st struct {
		Type          string `json:"_type"`
		PredicateType string `json:"predicateType"`
	}
	require.NoError(t, json.Unmarshal(payload, &st))
	require.Equal(t, "https://in-toto.io/Statement/v1", st.Type)
	require.Equal(t, "https://slsa.dev/provenance/v1", st.PredicateType)
	out, ok = testutil.OpenSSLVerifyBundle(t, filepath.Join(dir, "manifest.json.sigstore.json"), filepath.Join(dir, "manifest.json"), pub)
	require.True(t, ok, out)
	require.Contains(t, out, "Verified OK")
}

// cosignVerify runs cosign (v2.6.5, offline) on the bundle and the
// provenance; KILN_COSIGN names the binary. CI does not build cosign
// (docs/supply-chain.md); openssl is its independent judge.
func cosignVerify(t *testing.T, cosign, dir, pub string) {
	root := filepath.Join(t.TempDir(), "trusted_root.json")
	require.NoError(t, os.WriteFile(root, []byte(`{"mediaType":"application/vnd.dev.sigstore.trustedroot+json;version=0.1"}`), 0o644))
	for _, args := range [][]string{
		{"verify-blob", "--key", pub, "--new-bundle-format", "--bundle", filepath.Join(dir, "manifest.json.sigstore.json"),
			"--trusted-root", root, "--insecure-ignore-tlog=true", filepath.Join(dir, "manifest.json")},
		{"verify-blob-attestation", "--key", pub, "--signature", filepath.Join(dir, "provenance.dsse.json"),
			"--type", "slsaprovenance1", "--insecure-ignore-tlog=true", filepath.Join(dir, "manifest.json")},
	} {
		out, err := exec.Command(cosign, args...).CombinedOutput()
		require.NoError(t, err, "cosign %s:\n%s", strings.Join(args, " "), out)
		require.Contains(t, string(out), "Verified OK")
		t.Logf("cosign %s: Verified OK", args[0])
	}
}

// A build step that leaves a private key in /root/.ssh fails the build
// before the disk is written (no boot), naming the path; nothing is
// published, and the kept build.log hides the sensitive value.
func TestE2ESecretLintFailsTheBuild(t *testing.T) {
	requireE2E(t)
	images := t.TempDir()
	recipe := writeSupplyRecipe(t, "leaky", `  build "shell" "leave-a-key" {
    inline = [
      "mkdir -p /root/.ssh",
      "printf -- '-----BEGIN OPENSSH PRIVATE KEY-----\\n%s\\n-----END OPENSSH PRIVATE KEY-----\\n' \"$(head -c 300 /dev/urandom | base64 -w 70)\" > /root/.ssh/id_ed25519",
      "echo 'token=${var.api_token}' > /etc/leaky.conf",
    ]
  }`)
	code, out, errOut := runKiln(t, "build", "--images", images, "--cache", sharedCache(t), "-var", "api_token="+supplySecret, recipe)
	require.Equal(t, 1, code, "stdout:\n%s\nstderr:\n%s", out, errOut)
	require.Contains(t, errOut, "stage lint: the image holds 2 secret(s)")
	require.Contains(t, errOut, "/root/.ssh/id_ed25519: OpenSSH private key")
	require.Contains(t, errOut, `/etc/leaky.conf: value of sensitive variable "api_token"`)
	require.NotContains(t, errOut+out, supplySecret)
	buildLog := filepath.Join(requireNothingPublished(t, images, "leaky"), "build.log")
	require.False(t, containsSecret(t, buildLog))
	data, _ := os.ReadFile(buildLog)
	require.Contains(t, string(data), "configuring with (sensitive)")
	require.Contains(t, string(data), "/root/.ssh/id_ed25519: OpenSSH private key")
	require.NotContains(t, string(data), "=== stage disk", "the lint fails before the disk is written")
}
