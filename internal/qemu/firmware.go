package qemu

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"
)

// UEFIFirmware is a split UEFI build (read-only code plus an NVRAM template
// that every guest gets its own writable copy of), as chosen from a QEMU
// firmware descriptor.
type UEFIFirmware struct {
	Code         string   // the executable, mapped read-only as pflash unit 0
	CodeFormat   string   // its block format, e.g. "raw" or "qcow2"
	VarsTemplate string   // the NVRAM template; never written, only copied
	VarsFormat   string   // the template's (and so the copy's) block format
	Descriptor   string   // the descriptor file this came from, for logs
	Features     []string // the descriptor's "features", e.g. "requires-smm"
}

// RequiresSMM reports whether the firmware must run with SMM enabled and its
// flash protected from the OS, which every Secure Boot build needs.
func (f *UEFIFirmware) RequiresSMM() bool {
	return f != nil && slices.Contains(f.Features, "requires-smm")
}

// FirmwareQuery says which firmware FindUEFI looks for and where.
type FirmwareQuery struct {
	// Dirs are descriptor directories, highest precedence first; nil means
	// FirmwareDirs(). Tests point this at fixtures.
	Dirs []string
	// Arch is the target architecture; empty means "x86_64".
	Arch string
	// Machine is the machine type (or glob) the firmware must support;
	// empty means "pc-q35-*", the q35 family Options.Machine defaults to.
	Machine string
	// SecureBoot asks for a Secure Boot build: the descriptor must have the
	// "secure-boot" feature. Without it, descriptors with "secure-boot" or
	// "enrolled-keys" are skipped, so the guest boots unsigned loaders.
	SecureBoot bool
	// EnrolledKeys, with SecureBoot, also asks for the "enrolled-keys"
	// feature: an NVRAM template with the usual (Microsoft) keys enrolled
	// and Secure Boot enforced, rather than one in setup mode.
	EnrolledKeys bool
}

// FirmwareDirs returns QEMU's firmware descriptor directories in precedence
// order: the user's ($XDG_CONFIG_HOME, else ~/.config), the administrator's,
// the distribution's. A directory that does not exist is simply empty.
func FirmwareDirs() []string {
	var dirs []string
	if x := os.Getenv("XDG_CONFIG_HOME"); filepath.IsAbs(x) {
		dirs = append(dirs, filepath.Join(x, "qemu", "firmware"))
	} else if home, err := os.UserHomeDir(); err == nil && home != "" {
		dirs = append(dirs, filepath.Join(home, ".config", "qemu", "firmware"))
	}
	return append(dirs, "/etc/qemu/firmware", "/usr/share/qemu/firmware")
}

// descriptor is the subset of QEMU's firmware descriptor
// (docs/interop/firmware.json) that selection needs.
type descriptor struct {
	Description    string   `json:"description"`
	InterfaceTypes []string `json:"interface-types"`
	Mapping        struct {
		Device        string    `json:"device"`
		Mode          string    `json:"mode"` // absent means "split"
		Executable    flashFile `json:"executable"`
		NVRAMTemplate flashFile `json:"nvram-template"`
	} `json:"mapping"`
	Targets []struct {
		Architecture string   `json:"architecture"`
		Machines     []string `json:"machines"`
	} `json:"targets"`
	Features []string `json:"features"`
}

type flashFile struct {
	Filename string `json:"filename"`
	Format   string `json:"format"`
}

// FindUEFI picks UEFI firmware the way QEMU's descriptor specification asks
// management tools to: descriptors from all directories are merged by file
// name (a name in a higher-precedence directory hides the same name below it,
// and an empty file hides it without replacing it), then considered in file
// name order; the first that fits the query wins. A descriptor fits when it
// is a UEFI build mapped as split flash, targets the architecture with a
// machine glob covering the machine, has the right Secure Boot features, and
// its files exist.
func FindUEFI(q FirmwareQuery) (*UEFIFirmware, error) {
	dirs := q.Dirs
	if dirs == nil {
		dirs = FirmwareDirs()
	}
	arch, machine := q.Arch, q.Machine
	if arch == "" {
		arch = "x86_64"
	}
	if machine == "" {
		machine = "pc-q35-*"
	}

	// Merge by name: the first directory to list a name owns it.
	chosen := map[string]string{}
	for _, dir := range dirs {
		entries, err := os.ReadDir(dir)
		if err != nil {
			continue // a missing directory has no descriptors
		}
		for _, e := range entries {
			name := e.Name()
			if e.IsDir() || !strings.HasSuffix(name, ".json") {
				continue
			}
			if _, ok := chosen[name]; !ok {
				chosen[name] = filepath.Join(dir, name)
			}
		}
	}
	names := make([]string, 0, len(chosen))
	for n := range chosen {
		names = append(names, n)
	}
	sort.Strings(names)

	var skipped []string
	for _, name := range names {
		file := chosen[name]
		fw, why := considerDescriptor(file, arch, machine, q)
		if fw != nil {
			return fw, nil
		}
		skipped = append(skipped, fmt.Sprintf("%s: %s", file, why))
	}

	kind := "UEFI firmware"
	if q.SecureBoot {
		kind = "Secure Boot UEFI firmware"
	}
	if q.SecureBoot && q.EnrolledKeys {
		kind = "Secure Boot UEFI firmware with enrolled keys"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "no %s for %s (machine %s) found in QEMU firmware descriptors\n", kind, arch, machine)
	fmt.Fprintf(&b, "searched: %s\n", strings.Join(dirs, ", "))
	if len(skipped) == 0 {
		b.WriteString("no descriptor files there\n")
	} else {
		b.WriteString("skipped:\n")
		for _, s := range skipped {
			b.WriteString("  " + s + "\n")
		}
	}
	b.WriteString("install OVMF (Debian/Ubuntu: apt-get install ovmf), or drop a descriptor into the first directory")
	return nil, errors.New(b.String())
}

// considerDescriptor returns the firmware a descriptor names if it fits, or
// why it does not.
func considerDescriptor(file, arch, machine string, q FirmwareQuery) (*UEFIFirmware, string) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err.Error()
	}
	if strings.TrimSpace(string(data)) == "" {
		return nil, "empty (disables this name)"
	}
	var d descriptor
	if err := json.Unmarshal(data, &d); err != nil {
		return nil, "not a valid descriptor: " + err.Error()
	}
	if !slices.Contains(d.InterfaceTypes, "uefi") {
		return nil, fmt.Sprintf("interface-types %q has no \"uefi\"", d.InterfaceTypes)
	}
	if d.Mapping.Device != "flash" {
		return nil, fmt.Sprintf("mapping.device is %q, not \"flash\"", d.Mapping.Device)
	}
	if m := d.Mapping.Mode; m != "" && m != "split" {
		return nil, fmt.Sprintf("mapping.mode is %q, not \"split\"", m)
	}
	if !targets(d, arch, machine) {
		return nil, fmt.Sprintf("no target for %s with a machine matching %s", arch, machine)
	}
	secure := slices.Contains(d.Features, "secure-boot")
	if q.SecureBoot && !secure {
		return nil, "no \"secure-boot\" feature"
	}
	if q.SecureBoot && q.EnrolledKeys && !slices.Contains(d.Features, "enrolled-keys") {
		return nil, "no \"enrolled-keys\" feature"
	}
	if !q.SecureBoot {
		for _, f := range []string{"secure-boot", "enrolled-keys"} {
			if slices.Contains(d.Features, f) {
				return nil, fmt.Sprintf("has feature %q (Secure Boot not requested)", f)
			}
		}
	}
	code, vars := d.Mapping.Executable, d.Mapping.NVRAMTemplate
	if code.Filename == "" || vars.Filename == "" {
		return nil, "mapping lacks an executable or an nvram-template filename"
	}
	for _, f := range []string{code.Filename, vars.Filename} {
		if _, err := os.Stat(f); err != nil {
			return nil, "names a missing file: " + err.Error()
		}
	}
	return &UEFIFirmware{
		Code:         code.Filename,
		CodeFormat:   orRaw(code.Format),
		VarsTemplate: vars.Filename,
		VarsFormat:   orRaw(vars.Format),
		Descriptor:   file,
		Features:     d.Features,
	}, ""
}

// targets reports whether d targets arch on machine. Descriptor machines are
// globs ("pc-q35-*") or concrete versions ("pc-q35-7.2"), and so may the
// wanted machine be, so either may match the other.
func targets(d descriptor, arch, machine string) bool {
	for _, t := range d.Targets {
		if t.Architecture != arch {
			continue
		}
		for _, m := range t.Machines {
			if ok, _ := path.Match(m, machine); ok {
				return true
			}
			if ok, _ := path.Match(machine, m); ok {
				return true
			}
		}
	}
	return false
}

func orRaw(format string) string {
	if format == "" {
		return "raw"
	}
	return format
}
