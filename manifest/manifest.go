// Package manifest is the schema of manifest.json, the record of one
// published build: what went in (recipe, variables, base, components), what
// came out (packages, kernel, layout, outputs and their sha256), how it was
// tested, and how long each stage took. It is the one Go type of that file:
// the builder writes it, the catalog, the chained bases and the CLI read it.
//
// It reads and writes the file and checks its schema version. It does not
// decide what a build records (package builder does) nor what the catalog
// does with it (package catalog).
package manifest

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/kiln-build/kiln/internal/atomicfile"
	"github.com/kiln-build/kiln/platform"
)

// SchemaVersion is bumped whenever manifest.json changes incompatibly.
const SchemaVersion = 1

// FileName is the manifest's name inside a build directory.
const FileName = "manifest.json"

// Manifest is manifest.json.
type Manifest struct {
	SchemaVersion int           `json:"schema_version"`
	Name          string        `json:"name"`
	Version       string        `json:"version"`
	Build         int           `json:"build"`
	Created       time.Time     `json:"created"`
	KilnVersion   string        `json:"kiln_version"`
	Recipe        Recipe        `json:"recipe"`
	Base          Base          `json:"base"`
	Kernel        string        `json:"kernel"`
	Packages      []Package     `json:"packages"`
	Boot          Boot          `json:"boot"`
	Disk          Disk          `json:"disk"`
	Outputs       []Output      `json:"outputs"`
	Tests         []TestResult  `json:"tests"`
	Health        []Health      `json:"health"`
	Stages        []StageTiming `json:"stages"`
	BuildSteps    []StepRecord  `json:"build_steps"`
	// InputsDigest is Inputs.Digest(), what kiln build --if-changed compares.
	InputsDigest string  `json:"inputs_digest,omitempty"`
	Inputs       *Inputs `json:"inputs,omitempty"`
	// Catalog is the recipe's catalog spec and lifecycle rule; kiln images
	// reads it (see docs/catalog.md).
	Catalog Catalog `json:"catalog"`
	// Parent is set for base "image" and base "file" builds.
	Parent *Parent `json:"parent,omitempty"`
	// Components are the recipe's components, resolved.
	Components []Component `json:"components"`
	// SourceDate is the time the build stamped on every file of the disk
	// and on the SBOMs, and where it came from.
	SourceDate SourceDate `json:"source_date"`
	// Lint is what the secret lint read and what the recipe allowed.
	Lint Lint `json:"lint"`
	// SBOMs are the artifact's software bills of materials.
	SBOMs []SBOM `json:"sboms"`
	// Provenance names the signed (or unsigned) provenance statement and
	// the Sigstore bundle over this manifest, both written after it.
	Provenance Provenance `json:"provenance"`
}

// Where a source date comes from.
const (
	SourceDateEnv    = "SOURCE_DATE_EPOCH" // the environment variable
	SourceDateDebian = "debian-release"    // the Date of the archive's InRelease file
	SourceDateParent = "parent"            // the parent image's source date
	SourceDateTree   = "tree"              // the newest modification time in the base tree
)

// SourceDate is a build's source date: seconds since the epoch, the same
// as a time, and its origin (one of the SourceDate* constants).
type SourceDate struct {
	Epoch  int64     `json:"epoch"`
	Time   time.Time `json:"time"`
	From   string    `json:"from"`
	Detail string    `json:"detail,omitempty"`
}

// Lint records the secret lint of a build: the recipe's allow patterns,
// the findings they accepted, and how many files were read.
type Lint struct {
	Allow   []string      `json:"allow"`
	Allowed []LintFinding `json:"allowed"`
	Files   int           `json:"files_scanned"`
}

// LintFinding is a secret the lint found at a path inside the image.
type LintFinding struct {
	Path string `json:"path"`
	What string `json:"what"`
}

// SBOM is one software bill of materials in the artifact.
type SBOM struct {
	File     string `json:"file"`
	Format   string `json:"format"` // spdx-2.3 or cyclonedx-1.6
	SHA256   string `json:"sha256"`
	Packages int    `json:"packages"`
}

// Provenance names the provenance files, which are written after the
// manifest (they sign it): the DSSE envelope and, for a signed build, the
// Sigstore bundle over manifest.json and the signing key's ID.
type Provenance struct {
	File   string `json:"file"`
	Signed bool   `json:"signed"`
	KeyID  string `json:"key_id,omitempty"`
	Bundle string `json:"sigstore_bundle,omitempty"`
}

// Recipe identifies the recipe a build came from.
type Recipe struct {
	Path      string         `json:"path"`
	SHA256    string         `json:"sha256"`
	Variables map[string]any `json:"variables"`
	// NotReproducible says why building the recipe again cannot give the
	// same image, such as "timestamp() in web.hcl"; absent when nothing in
	// the recipe depends on when it was built.
	NotReproducible []string `json:"not_reproducible,omitempty"`
}

// Base records the base a build started from. For a Debian base every
// field is set; image and file bases set only Type (the parent is in Parent).
type Base struct {
	Type          string   `json:"type"`
	Suite         string   `json:"suite"`
	Mirror        string   `json:"mirror"`
	Variant       string   `json:"variant"`
	Arch          string   `json:"arch"`
	Components    []string `json:"components"`
	ReleaseSHA256 string   `json:"release_sha256"`
	CacheKey      string   `json:"cache_key"`
	CacheHit      bool     `json:"cache_hit"`
}

// Package is one installed Debian package.
type Package struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	Arch    string `json:"architecture"`
}

// Boot is the image's boot mode.
type Boot struct {
	Firmware       platform.Firmware `json:"firmware"`
	PartitionTable platform.Table    `json:"partition_table"`
	Bootloader     string            `json:"bootloader"`
	// SecureBoot is how the UEFI boot path is signed: off, distro or custom.
	SecureBoot platform.SecureBoot `json:"secure_boot"`
	// TPM says the test VM had a TPM 2.0.
	TPM bool `json:"tpm"`
	// TCGCPU is the recipe's boot.tcg_cpu, the test VM's CPU under TCG;
	// empty when the recipe left it to the default. kiln test uses it.
	TCGCPU platform.TCGCPU `json:"tcg_cpu,omitempty"`
	// Chain is the UEFI boot chain: each EFI binary on the ESP, then the
	// kernel, with who signed it. Empty for a BIOS-only image.
	Chain []BootFile `json:"chain"`
}

// BootFile is one binary of the UEFI boot chain.
type BootFile struct {
	// Path is the file's path on the ESP ("EFI/BOOT/BOOTX64.EFI") or, for
	// the kernel, in the root tree ("/boot/vmlinuz-6.12.0-1-cloud-amd64").
	Path   string `json:"path"`
	SHA256 string `json:"sha256"`
	// Signers are its Authenticode signatures, in order; empty when unsigned.
	Signers []Signer `json:"signers"`
}

// Signer is one Authenticode signature: the signer certificate's subject
// and issuer in OpenSSL's one-line form.
type Signer struct {
	Subject string `json:"subject"`
	Issuer  string `json:"issuer"`
}

// Disk is the layout of the raw disk.
type Disk struct {
	Size       uint64      `json:"size"`
	GUID       string      `json:"guid,omitempty"`
	Partitions []Partition `json:"partitions"`
}

// Partition is one partition of Disk. Start and Size are bytes.
type Partition struct {
	Number     int    `json:"number"`
	Label      string `json:"label"`
	TypeGUID   string `json:"type_guid,omitempty"`
	GUID       string `json:"guid,omitempty"`
	Start      uint64 `json:"start"`
	Size       uint64 `json:"size"`
	Filesystem string `json:"filesystem"`
	FSUUID     string `json:"filesystem_uuid"`
	Mount      string `json:"mount,omitempty"`
}

// Output is one published disk file.
type Output struct {
	File        string `json:"file"`
	Format      string `json:"format"`
	Subformat   string `json:"subformat,omitempty"`
	Size        int64  `json:"size"`
	VirtualSize uint64 `json:"virtual_size"`
	SHA256      string `json:"sha256"` // of the file as published
	// Compression and UncompressedSHA256 are set for a compressed raw image.
	Compression        string   `json:"compression,omitempty"`
	UncompressedSHA256 string   `json:"uncompressed_sha256,omitempty"`
	Checks             []string `json:"checks"` // platform rules it was verified against
}

// Status is the outcome of a test or a health check.
type Status string

const (
	Pass    Status = "pass"
	Fail    Status = "fail"
	Skipped Status = "skipped" // a health check the recipe opted out of
)

// TestResult is one guest test of one boot.
type TestResult struct {
	Name     string        `json:"name"`
	Firmware platform.Boot `json:"firmware"`
	Status   Status        `json:"status"` // pass | fail
	ExitCode int           `json:"exit_code"`
	Seconds  float64       `json:"duration_seconds"`
	Output   string        `json:"output_excerpt"`
}

// Health records the base checks every boot is held to.
type Health struct {
	Firmware      platform.Boot `json:"firmware"`
	MultiUser     bool          `json:"multi_user_reached"`
	FailedUnits   string        `json:"failed_units"`
	ConsoleErrors []string      `json:"console_errors"`
	BootSeconds   float64       `json:"boot_seconds"`
	Accelerator   string        `json:"accelerator"`
	VCPUs         int           `json:"vcpus,omitempty"` // the test VM's
	CPU           string        `json:"cpu,omitempty"`   // the test VM's CPU: "host" under KVM, else the TCG level (x86-64-v2-aes, max)
	Problems      []string      `json:"problems"`
	// Checks are the named base checks (see recipes.HealthChecks) with their status.
	Checks []HealthCheck `json:"checks"`
	// Profile is when the boot reached each milestone (see BootProfile);
	// nil when nothing could be timed.
	Profile *BootProfile `json:"profile,omitempty"`
}

// BootProfile is when one boot reached each of its milestones, in seconds
// from QEMU's start, read from the serial console as it arrived and from the
// clocks the guest reports (see docs/testing.md). A milestone that was not
// seen is 0 and left out.
type BootProfile struct {
	Firmware   float64 `json:"firmware,omitempty"`   // the firmware started the bootloader
	Bootloader float64 `json:"bootloader,omitempty"` // the bootloader started loading the kernel
	Kernel     float64 `json:"kernel,omitempty"`     // the kernel started its clock
	Init       float64 `json:"init,omitempty"`       // the kernel ran the initramfs's /init
	Root       float64 `json:"root,omitempty"`       // the root filesystem was mounted
	Systemd    float64 `json:"systemd,omitempty"`    // systemd started on the root filesystem
	MultiUser  float64 `json:"multi_user,omitempty"` // multi-user.target was reached
	// SlowestUnits are the units that took longest to start, slowest
	// first (systemd-analyze blame); only kiln test --profile asks for them.
	SlowestUnits []UnitTime `json:"slowest_units,omitempty"`
}

// UnitTime is how long a systemd unit took to start.
type UnitTime struct {
	Unit    string  `json:"unit"`
	Seconds float64 `json:"seconds"`
}

// HealthCheck is the outcome of one named base health check of one boot.
type HealthCheck struct {
	Name   string `json:"name"`
	Status Status `json:"status"` // pass, fail or skipped (the recipe opted out)
	Detail string `json:"detail,omitempty"`
}

// StageTiming is how long one pipeline stage took.
type StageTiming struct {
	Stage   string  `json:"stage"`
	Seconds float64 `json:"seconds"`
}

// StepRecord is one build or validate step: run, or restored from the
// layer cache.
type StepRecord struct {
	Name    string  `json:"name"`
	Seconds float64 `json:"seconds"` // running it, or restoring its layer

	Attempts int  `json:"attempts,omitempty"` // with retries
	Failed   bool `json:"failed,omitempty"`   // failed with on_failure = "continue"

	// Cached is true when the step did not run: its layer was restored
	// from the layer cache. CacheKey is the key of its layer, empty for a
	// step that is not cached (validate steps, cache = false, any build
	// step after one that is not cached).
	Cached   bool   `json:"cached"`
	CacheKey string `json:"cache_key,omitempty"`
}

// Parent records the disk a base "image", "file" or "oci" tree was
// extracted from. SHA256 is the base's digest: a rebuild whose parent has another
// sha256 has a changed base.
type Parent struct {
	Kind        string        `json:"kind"` // image, file or oci
	Name        string        `json:"name,omitempty"`
	Version     string        `json:"version,omitempty"`
	Build       int           `json:"build,omitempty"`
	SHA256      string        `json:"sha256"`
	Path        string        `json:"path"`
	Format      string        `json:"format"`
	Compression string        `json:"compression,omitempty"`
	Extracted   []ExtractedFS `json:"extracted"`
	// Ref and Digest are set for base "oci": the registry reference the
	// recipe names and the digest of the artifact it named when the
	// parent was pulled.
	Ref    string `json:"ref,omitempty"`
	Digest string `json:"digest,omitempty"`
}

// ExtractedFS is one ext4 filesystem of the parent disk copied into the tree.
type ExtractedFS struct {
	Mount     string `json:"mount"` // "/", "/boot", ...
	Partition int    `json:"partition"`
	UUID      string `json:"uuid"` // the filesystem's
}

// Component records a component the recipe used, resolved.
type Component struct {
	Name       string         `json:"name"`
	Constraint string         `json:"constraint"` // as the recipe wrote it, e.g. 1.x.x
	Version    string         `json:"version"`    // what it resolved to
	Source     string         `json:"source"`     // "builtin" or the component file's path
	SHA256     string         `json:"sha256"`     // of the component file
	Parameters map[string]any `json:"parameters"`
	// FilesSHA256 covers the files its steps read (see recipes.Component).
	FilesSHA256 string `json:"files_sha256,omitempty"`
}

// Inputs are everything a build's result depends on, as far as Kiln can
// name it. Their digest is recorded as inputs_digest, and `kiln build
// --if-changed` skips a build whose inputs digest equals that of the newest
// published build of the same image name and version.
//
// Not inputs: the time of the build, SOURCE_DATE_EPOCH, the catalog and cache
// directories, and anything a build step downloads by itself (a step that
// fetches a URL is not rebuilt when the URL's content changes).
type Inputs struct {
	KilnVersion  string `json:"kiln_version"`
	RecipeSHA256 string `json:"recipe_sha256"`
	// Files maps every file the recipe references (build and test scripts),
	// by its path relative to the recipe's directory, to its sha256.
	Files map[string]string `json:"files"`
	// Variables are the final values of the recipe's variables; they are
	// hashed as JSON with sorted keys.
	Variables map[string]any `json:"variables"`
	// Components are the digests of the resolved components the recipe
	// uses, in order.
	Components []string   `json:"components"`
	Base       BaseInputs `json:"base"`
}

// BaseInputs identify what a build starts from.
type BaseInputs struct {
	Type string `json:"type"`
	// Debian: the suite, what is installed, where from, and the archive's
	// InRelease digest, which changes whenever the archive publishes anything.
	Suite         string   `json:"suite,omitempty"`
	Variant       string   `json:"variant,omitempty"`
	Arch          string   `json:"arch,omitempty"`
	Mirror        string   `json:"mirror,omitempty"`
	Components    []string `json:"components,omitempty"`
	Packages      []string `json:"packages,omitempty"`
	ReleaseSHA256 string   `json:"release_sha256,omitempty"`
	// Digest is the input digest of a base that is not Debian, such as the
	// sha256 of a parent image.
	Digest string `json:"digest,omitempty"`
}

// Digest is the hex sha256 of the inputs' JSON (which has sorted map keys).
func (in *Inputs) Digest() string {
	data, err := json.Marshal(in)
	if err != nil { // only unsupported variable values; they cannot come from a recipe
		data = []byte(fmt.Sprintf("%#v", in))
	}
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// StageSeconds returns the recorded duration of a stage, or -1.
func (m *Manifest) StageSeconds(stage string) float64 {
	for _, s := range m.Stages {
		if s.Stage == stage {
			return s.Seconds
		}
	}
	return -1
}

// BaseDigest is what identifies the build's base for change detection: the
// parent disk's sha256 for image and file bases, the archive's Release
// digest for Debian bases.
func (m *Manifest) BaseDigest() string {
	if m.Parent != nil {
		return m.Parent.SHA256
	}
	return m.Base.ReleaseSHA256
}

// ErrSchema is wrapped by Decode and Read for a manifest whose
// schema_version this Kiln does not read.
var ErrSchema = errors.New("unsupported manifest schema version")

// Decode parses manifest.json's bytes and checks the schema version.
func Decode(data []byte) (*Manifest, error) {
	var m Manifest
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, err
	}
	if m.SchemaVersion != SchemaVersion {
		return nil, fmt.Errorf("%w %d (this Kiln reads %d)", ErrSchema, m.SchemaVersion, SchemaVersion)
	}
	return &m, nil
}

// Read reads dir/manifest.json. Errors name the file.
func Read(dir string) (*Manifest, error) {
	path := filepath.Join(dir, FileName)
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	m, err := Decode(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return m, nil
}

// Encode is the manifest as written: indented JSON with a final newline.
func (m *Manifest) Encode() ([]byte, error) {
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(data, '\n'), nil
}

// Write writes dir/manifest.json durably: a temporary file, synced, then
// renamed over the old one, so a reader sees the old or the new manifest,
// never half of one.
func (m *Manifest) Write(dir string) error {
	data, err := m.Encode()
	if err != nil {
		return err
	}
	return atomicfile.Write(filepath.Join(dir, FileName), data, 0o644)
}
