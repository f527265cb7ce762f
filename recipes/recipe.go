package recipes

import (
	"fmt"
	"io/fs"
	"time"

	"github.com/hashicorp/hcl/v2"

	"github.com/kiln-build/kiln/platform"
)

// FormatVersion is the version of the recipe language this Kiln reads. A
// recipe's kiln { required_version = "..." } constraint is checked against it.
const FormatVersion = "0.1"

// Range is a position in a source file. Line and Column start at 1.
type Range struct {
	Filename     string
	Line, Column int
}

// String formats r as file:line:col.
func (r Range) String() string { return fmt.Sprintf("%s:%d:%d", r.Filename, r.Line, r.Column) }

func toRange(r hcl.Range) Range {
	return Range{Filename: r.Filename, Line: r.Start.Line, Column: r.Start.Column}
}

// LoadOptions are the built-in component library and the variable values
// given on the command line and in the environment.
type LoadOptions struct {
	// Library is the built-in component library: component files (*.hcl)
	// at its root, reported as Source "builtin". Kiln passes
	// components.Builtin(); nil means no built-in components, only the
	// recipe's component_paths. It is read and parsed once per process for
	// each file system value (when the value can be a map key), so it must
	// not change while the process runs.
	Library fs.FS
	// Vars are "name=value" pairs from -var flags, in order.
	Vars []string
	// VarFiles are paths of -var-file files, in order. Relative paths are
	// relative to the working directory, not to the recipe.
	VarFiles []string
	// Env is an os.Environ()-style list; KILN_VAR_<name>=value sets a
	// variable, and SOURCE_DATE_EPOCH is the time timestamp() returns.
	Env []string

	// autoVarFiles are the *.auto.kilnvars.* files next to the recipe; Load
	// sets them.
	autoVarFiles []string
}

// Recipe is a fully parsed and validated recipe, with defaults applied.
type Recipe struct {
	// Path is the recipe's path as given to Load or Parse.
	Path string
	// Dir is the absolute directory of the recipe.
	Dir string
	// SHA256 is the hex SHA-256 of the recipe file's bytes.
	SHA256 string
	// RequiredVersion is the kiln block's required_version, "" without one.
	RequiredVersion string
	// Variables holds the final value of every declared variable as plain Go
	// values: string, bool, int64 (whole numbers that fit) or float64 (other
	// numbers), []any (lists, tuples and sets), map[string]any (maps and
	// objects), and nil for null.
	Variables map[string]any
	// Sensitive names the variables declared with sensitive = true. Their
	// values are in Variables (the build needs them) but must never be
	// shown or recorded: use PublicVariables for anything a person or a
	// file sees.
	Sensitive map[string]bool
	// Declared describes every declared variable, in recipe order, with
	// where its value came from.
	Declared []Variable
	// Locals are the locals blocks' values, in recipe order.
	Locals []Local
	// ReadFiles are the files the recipe's expressions read with file,
	// filebase64, fileexists and templatefile (absolute path to the hex
	// SHA-256 of the content, or FileAbsent): inputs of the build like the
	// recipe itself. Files read by components' expressions are in their
	// Component.FilesSHA256 instead.
	ReadFiles map[string]string
	// NotReproducible says why building this recipe twice cannot give the
	// same image, such as "timestamp() in web.hcl"; empty when nothing in
	// the recipe depends on when it is read.
	NotReproducible []string
	Image           Image
}

// Variable describes a declared variable.
type Variable struct {
	Name        string
	Type        string // as a recipe writes it; "" when untyped
	Description string
	Sensitive   bool
	// Source is where the value came from: "default", "KILN_VAR_NAME",
	// "-var", "-var-file FILE:LINE" or, for an auto-loaded variables file,
	// "FILE:LINE".
	Source string
	Range  Range // the variable block
}

// Redacted stands for a sensitive variable's value wherever Kiln shows or
// records one (manifest, logs, --json).
const Redacted = "(sensitive)"

// PublicVariables is Variables with every sensitive value replaced by
// Redacted: what the manifest, the logs and --json may show.
func (r *Recipe) PublicVariables() map[string]any { return redact(r.Variables, r.Sensitive) }

// SensitiveValues are the string values of the sensitive variables (of
// each element of a list or map too), by variable name: what the secret
// lint looks for in the tree and the redactor hides in everything Kiln
// writes.
func (r *Recipe) SensitiveValues() map[string]string {
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

// redact is values with those named in sensitive replaced by Redacted.
func redact(values map[string]any, sensitive map[string]bool) map[string]any {
	out := make(map[string]any, len(values))
	for k, v := range values {
		if sensitive[k] {
			v = Redacted
		}
		out[k] = v
	}
	return out
}

// Image is the recipe's image block.
type Image struct {
	Name        string
	Version     string // MAJOR.MINOR.PATCH
	Description string
	Base        Base
	Boot        Boot
	Disk        Disk
	Build       []Step      // in recipe order, components' build steps where the component block is
	Validate    []Step      // after every build step: the image's validate steps and its components'
	Tests       []Step      // in recipe order, components' test steps included
	Components  []Component // in recipe order
	Output      Output
	Catalog     Catalog        // see catalog.go
	Lint        Lint           // see lint.go
	Lifecycle   *Lifecycle     // nil without a lifecycle block
	Distribute  []Distribution // in recipe order
	SkipHealth  []string       // base health checks the recipe opts out of (names in HealthChecks)
	Range       Range          // the image block's header
}

// Base is the image's base block: what the image starts from. Type is
// BaseDebian (a bootstrapped tree: Suite … Packages), BaseImage (a
// cataloged Kiln image: Name, VersionSelector, IncludeDeprecated),
// BaseFile (a disk image file: Path, SHA256) or BaseOCI (a build in an OCI
// registry: Ref, PlainHTTP).
type Base struct {
	Type       BaseKind
	Suite      string
	Mirror     string // "" means the builder reads the host's apt sources
	Variant    string // minbase (default), required, important or standard
	Arch       string // amd64
	Components []string
	Packages   []string
	// InitramfsModules is the initramfs's driver policy: InitramfsVM (the
	// default) or InitramfsMost (Debian's).
	InitramfsModules string

	Name              string // image: the parent image's name
	VersionSelector   string // image: a version or x-wildcard selector, such as "1.x.x"; default "x.x.x"
	IncludeDeprecated bool   // image: deprecated builds may be picked
	Path              string // file: absolute path of the disk image (relative ones resolve against the recipe's directory)
	SHA256            string // file: lowercase hex SHA-256 of the file's bytes
	Ref               string // oci: REGISTRY/REPOSITORY:TAG or @sha256:DIGEST of a pushed build
	PlainHTTP         bool   // oci: plain HTTP to a registry that is not on loopback

	Range Range
}

// Boot is the image's boot block. Range is zero when the block is absent.
type Boot struct {
	Firmware      platform.Firmware // uefi, bios or hybrid (the default, DefaultFirmware)
	KernelCmdline []string
	// MenuTimeout is how long GRUB shows its menu; 0 (the default) boots
	// at once without it.
	MenuTimeout time.Duration
	// UpdateAtFirstBoot leaves ldconfig, the journal catalog and system
	// users to the first boot (systemd's ConditionNeedsUpdate= units), as
	// Debian does; by default Kiln runs them at build time.
	UpdateAtFirstBoot bool
	// SecureBoot is how the UEFI boot path is signed: off (the default),
	// distro or custom. The BIOS path of a hybrid image stays as it is.
	SecureBoot platform.SecureBoot
	// TPM gives the test VM a TPM 2.0 (swtpm).
	TPM bool
	// TCGCPU is the test VM's CPU when QEMU emulates it (TCG); empty
	// leaves it to KILN_TCG_CPU, else x86-64-v2-aes. Under KVM the test
	// VM gets the host's CPU.
	TCGCPU platform.TCGCPU
	// Custom Secure Boot: absolute paths of the PEM signing key and
	// certificate, and of an OVMF variable store with that certificate in
	// db, which the test VM boots with. Empty unless SecureBoot is custom.
	SecureBootKey, SecureBootCertificate, SecureBootVars string
	Range                                                Range
}

// Disk is the image's disk block, sizes in bytes. Range is zero when the
// block is absent.
type Disk struct {
	Size      uint64         // 0 when Auto
	Auto      bool           // size = "auto": the content plus Headroom percent, rounded up to 1MiB
	Headroom  int            // percent, for Auto
	Table     platform.Table // gpt (the default) or mbr
	ESPSize   uint64         // the ESP of the default layout (no partition blocks)
	Seed      string         // mixed into every derived identifier
	GUID      string         // GPT disk GUID; "" = derived
	Signature uint32         // MBR disk signature; 0 = derived
	Grow      bool           // grow the root partition and filesystem to fill the disk at boot
	// ESPAutomount mounts the default layout's ESP on first use (a systemd
	// automount) rather than on the way to local-fs.target.
	ESPAutomount bool
	Partitions   []Partition
	Range        Range
}

// Partition is a partition block, in disk order. An empty Partitions list
// means the default layout for the boot mode.
type Partition struct {
	Label      string
	Size       uint64 // 0 when Rest
	Rest       bool   // size = "rest": what the other partitions leave
	Type       string // as written: an alias (esp, bios, root, linux, swap, home, var), a GUID or "0xNN"
	TypeGUID   string // "" when the type has no GPT form
	TypeMBR    byte   // 0 when the type has no MBR form
	Filesystem string // ext4, vfat, swap or none
	Mount      string
	Options    string // mount options for /etc/fstab
	GUID       string // partition GUID; "" = derived
	UUID       string // filesystem UUID (vfat: volume ID XXXX-XXXX); "" = derived
	Range      Range
}

// Output is the image's output block. Range is zero when the block is absent.
type Output struct {
	Formats         []string // raw, qcow2, vmdk, vhd, vhdx, ova
	Compress        string   // the raw image's compression: zstd (default with an output block), xz or none
	VMDKSubformat   string   // streamOptimized (default) or monolithicSparse
	VHDSubformat    string   // fixed (default, what Azure takes) or dynamic
	QCOW2Compressed bool     // compressed qcow2 clusters
	CPUs            int      // the OVA's virtual machine
	MemoryMiB       int
	Range           Range
}

// Defaults applied when a recipe leaves something out.
const (
	DefaultFirmware     = platform.Hybrid // as Debian's cloud images: boots under BIOS and UEFI
	DefaultTable        = platform.GPT
	DefaultDiskSize     = 2 << 30   // used when there is no disk block
	DefaultESPSize      = 256 << 20 // 256MiB
	DefaultHeadroom     = 20        // percent added to the content when size = "auto"
	MinDiskSize         = 256 << 20
	MinESPSize          = 33 << 20 // FAT32 needs at least 65525 clusters
	MaxDiskSize         = 64 << 40
	MinRootSize         = 64 << 20 // room the disk must leave after the ESP
	DefaultVariant      = "minbase"
	InitramfsVM         = "vm"   // the disk drivers of virtual machines and clouds (the default)
	InitramfsMost       = "most" // Debian's MODULES=most: every storage and filesystem driver
	DefaultArch         = "amd64"
	DefaultBuildTimeout = 30 * time.Minute
	DefaultTestTimeout  = 5 * time.Minute
)

// The base components and output formats used when a recipe sets none; new
// slices each time, so callers may keep them.
func defaultComponents() []string { return []string{"main"} }
func defaultFormats() []string    { return []string{"raw"} }
