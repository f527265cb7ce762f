package builder

import (
	"time"

	"github.com/kiln-build/kiln/catalog"
)

// ManifestSchemaVersion is bumped whenever manifest.json changes incompatibly.
const ManifestSchemaVersion = 1

// Manifest is manifest.json, the record of one published build.
type Manifest struct {
	SchemaVersion int            `json:"schema_version"`
	Name          string         `json:"name"`
	Version       string         `json:"version"`
	Build         int            `json:"build"`
	Created       time.Time      `json:"created"`
	KilnVersion   string         `json:"kiln_version"`
	Recipe        ManifestRecipe `json:"recipe"`
	Base          ManifestBase   `json:"base"`
	Kernel        string         `json:"kernel"`
	Packages      []Package      `json:"packages"`
	Boot          ManifestBoot   `json:"boot"`
	Disk          ManifestDisk   `json:"disk"`
	Outputs       []Output       `json:"outputs"`
	Tests         []TestResult   `json:"tests"`
	Health        []Health       `json:"health"`
	Stages        []StageTiming  `json:"stages"`
	BuildSteps    []StepRecord   `json:"build_steps"`
	// InputsDigest is Inputs.Digest() of Inputs (see inputs.go), what
	// kiln build --if-changed compares.
	InputsDigest string  `json:"inputs_digest,omitempty"`
	Inputs       *Inputs `json:"inputs,omitempty"`
	// Catalog is the recipe's catalog, lifecycle rule and the like; kiln
	// images reads it (see docs/catalog.md).
	Catalog catalog.Spec `json:"catalog"`

	// Parent is set for base "image" and base "file" builds (builder/parent.go).
	Parent *ManifestParent `json:"parent,omitempty"`

	// Components are the recipe's components, resolved (builder/components.go).
	Components []ManifestComponent `json:"components"`
}

type ManifestRecipe struct {
	Path      string         `json:"path"`
	SHA256    string         `json:"sha256"`
	Variables map[string]any `json:"variables"`
}

type ManifestBase struct {
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

type Package struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	Arch    string `json:"architecture"`
}

type ManifestBoot struct {
	Firmware       string `json:"firmware"`
	PartitionTable string `json:"partition_table"`
	Bootloader     string `json:"bootloader"`
}

type ManifestDisk struct {
	Size       uint64              `json:"size"`
	GUID       string              `json:"guid,omitempty"`
	Partitions []ManifestPartition `json:"partitions"`
}

type ManifestPartition struct {
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

type TestResult struct {
	Name     string  `json:"name"`
	Firmware string  `json:"firmware"`
	Status   string  `json:"status"` // pass | fail
	ExitCode int     `json:"exit_code"`
	Seconds  float64 `json:"duration_seconds"`
	Output   string  `json:"output_excerpt"`
}

// Health records the base checks every boot is held to.
type Health struct {
	Firmware      string   `json:"firmware"`
	MultiUser     bool     `json:"multi_user_reached"`
	FailedUnits   string   `json:"failed_units"`
	ConsoleErrors []string `json:"console_errors"`
	BootSeconds   float64  `json:"boot_seconds"`
	Accelerator   string   `json:"accelerator"`
	Problems      []string `json:"problems"`
	// Checks are the named base checks (see recipes.HealthChecks) with their status.
	Checks []HealthCheck `json:"checks"`
}

type StageTiming struct {
	Stage   string  `json:"stage"`
	Seconds float64 `json:"seconds"`
}

type StepRecord struct {
	Name    string  `json:"name"`
	Seconds float64 `json:"seconds"`

	Attempts int  `json:"attempts,omitempty"` // with retries
	Failed   bool `json:"failed,omitempty"`   // failed with on_failure = "continue"
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
