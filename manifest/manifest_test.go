package manifest

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kiln-build/kiln/internal/units"
	"github.com/kiln-build/kiln/platform"
)

var update = flag.Bool("update", false, "rewrite testdata/manifest.golden.json from the code")

// full is a manifest with every field set, so that the golden file shows
// every key manifest.json can hold.
func full() *Manifest {
	created := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	return &Manifest{
		SchemaVersion: SchemaVersion, Name: "web", Version: "1.2.0", Build: 7, Created: created, KilnVersion: "0.3.0",
		Recipe: Recipe{Path: "web.hcl", SHA256: "aa", Variables: map[string]any{"suite": "trixie"}, NotReproducible: []string{"timestamp() in web.hcl"}},
		Base: Base{Type: "debian", Suite: "trixie", Mirror: "http://mirror.invalid/debian", Variant: "minbase", Arch: "amd64",
			Components: []string{"main"}, ReleaseSHA256: "bb", CacheKey: "cc", CacheHit: true},
		Kernel:   "6.12.0-1-cloud-amd64",
		Packages: []Package{{Name: "systemd", Version: "257-1", Arch: "amd64"}},
		Boot: Boot{Firmware: platform.Hybrid, PartitionTable: platform.GPT, Bootloader: "grub", SecureBoot: platform.SecureBootDistro, TPM: true, TCGCPU: platform.TCGCPUMax,
			Chain: []BootFile{{Path: "EFI/BOOT/BOOTX64.EFI", SHA256: "77", Signers: []Signer{{Subject: "/CN=signer", Issuer: "/CN=CA"}}}}},
		Disk: Disk{Size: 2 << 30, GUID: "G", Partitions: []Partition{{Number: 1, Label: "root", TypeGUID: "T", GUID: "P",
			Start: 1 << 20, Size: 1 << 30, Filesystem: "ext4", FSUUID: "U", Mount: "/"}}},
		Outputs: []Output{{File: "web.raw.zst", Format: "raw", Subformat: "s", Size: 10, VirtualSize: 2 << 30, SHA256: "dd",
			Compression: "zstd", UncompressedSHA256: "ee", Checks: []string{"qemu"}}},
		Tests: []TestResult{{Name: "t", Firmware: platform.BootUEFI, Status: Pass, ExitCode: 0, Seconds: 1.5, Output: "ok"}},
		Health: []Health{{Firmware: platform.BootUEFI, MultiUser: true, FailedUnits: "", ConsoleErrors: []string{}, BootSeconds: 40,
			Accelerator: "tcg", VCPUs: 1, CPU: "x86-64-v2-aes", Problems: []string{}, Checks: []HealthCheck{{Name: "finished", Status: Pass, Detail: "d"}},
			Profile: &BootProfile{Firmware: 1, Bootloader: 2, Kernel: 3, Init: 4, Root: 5, Systemd: 6, MultiUser: 7,
				SlowestUnits: []UnitTime{{Unit: "u.service", Seconds: 1.5}}}}},
		Stages:       []StageTiming{{Stage: "base", Seconds: 2}},
		BuildSteps:   []StepRecord{{Name: "s", Seconds: 1, Attempts: 2, Failed: true, Cached: true, CacheKey: "77"}},
		InputsDigest: "ff",
		Inputs: &Inputs{KilnVersion: "0.3.0", RecipeSHA256: "aa", Files: map[string]string{"x.sh": "11"}, Variables: map[string]any{"suite": "trixie"},
			Components: []string{"22"}, Base: BaseInputs{Type: "debian", Suite: "trixie", Variant: "minbase", Arch: "amd64", Mirror: "m",
				Components: []string{"main"}, Packages: []string{"p"}, ReleaseSHA256: "bb", Digest: "33"}},
		Catalog: Catalog{Encrypted: true, ProductCodes: []string{"pc"}, Visibility: "shared", SharedWith: []string{"alice"},
			Lifecycle: &Lifecycle{KeepLast: 3, DeprecateAfter: Age(30 * units.Day), DeleteAfter: Age(90 * units.Day)}},
		Parent: &Parent{Kind: "oci", Name: "base", Version: "1.0.0", Build: 1, SHA256: "44", Path: "base.raw", Format: "raw", Ref: "registry.invalid/base:1.0.0", Digest: "sha256:99",
			Compression: "zstd", Extracted: []ExtractedFS{{Mount: "/", Partition: 2, UUID: "U"}}},
		Components: []Component{{Name: "c", Constraint: "1.x.x", Version: "1.0.0", Source: "builtin", SHA256: "55",
			Parameters: map[string]any{"k": "v"}, FilesSHA256: "66"}},
		SourceDate: SourceDate{Epoch: 1764580000, Time: time.Unix(1764580000, 0).UTC(), From: SourceDateDebian, Detail: "Date of http://mirror.invalid/debian/dists/trixie/InRelease"},
		Lint:       Lint{Allow: []string{"/etc/ssl/private/*"}, Allowed: []LintFinding{{Path: "/etc/ssl/private/web.key", What: "private key (PEM PRIVATE KEY)"}}, Files: 9282},
		SBOMs:      []SBOM{{File: "sbom.spdx.json", Format: "spdx-2.3", SHA256: "77", Packages: 1}},
		Provenance: Provenance{File: "provenance.dsse.json", Signed: true, KeyID: "88", Bundle: "manifest.json.sigstore.json"},
	}
}

// The encoded manifest is exactly the golden file: keys, their order and
// their JSON types never change by accident. go test ./manifest -update
// rewrites it after a deliberate change (which also bumps SchemaVersion if
// it is incompatible).
func TestGolden(t *testing.T) {
	got, err := full().Encode()
	require.NoError(t, err)
	golden := filepath.Join("testdata", "manifest.golden.json")
	if *update {
		require.NoError(t, os.WriteFile(golden, got, 0o644))
	}
	want, err := os.ReadFile(golden)
	require.NoError(t, err)
	require.Equal(t, string(want), string(got), "manifest.json changed; run go test ./manifest -update if that is deliberate")
}

func TestWriteReadRoundTrip(t *testing.T) {
	dir := t.TempDir()
	m := full()
	require.NoError(t, m.Write(dir))
	back, err := Read(dir)
	require.NoError(t, err)
	a, _ := m.Encode()
	b, _ := back.Encode()
	require.True(t, bytes.Equal(a, b))
	left, _ := filepath.Glob(filepath.Join(dir, ".manifest.json-*"))
	require.Empty(t, left, "no temporary file is left")
}

func TestReadRefusesOtherSchemas(t *testing.T) {
	dir := t.TempDir()
	for _, data := range []string{`{"schema_version": 2, "name": "x"}`, `{"name": "x"}`} {
		require.NoError(t, os.WriteFile(filepath.Join(dir, FileName), []byte(data), 0o644))
		_, err := Read(dir)
		require.True(t, errors.Is(err, ErrSchema), "%s: %v", data, err)
		require.Contains(t, err.Error(), filepath.Join(dir, FileName), "the error names the file")
	}
	require.NoError(t, os.WriteFile(filepath.Join(dir, FileName), []byte(`{"schema_version": 1, "name": `), 0o644))
	_, err := Read(dir)
	require.Error(t, err, "a truncated manifest is an error")
}

func TestDigestIgnoresMapOrder(t *testing.T) {
	a := &Inputs{Variables: map[string]any{"a": 1, "b": 2}, Files: map[string]string{"x": "1", "y": "2"}}
	b := &Inputs{Variables: map[string]any{"b": 2, "a": 1}, Files: map[string]string{"y": "2", "x": "1"}}
	require.Equal(t, a.Digest(), b.Digest())
	b.Variables["a"] = 3
	require.NotEqual(t, a.Digest(), b.Digest())
}
