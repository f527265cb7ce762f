package bootloader

import (
	"bytes"
	"debug/elf"
	"debug/pe"
	"encoding/binary"
	"errors"
	"fmt"
	"sort"
	"strings"
)

// Under Secure Boot GRUB is locked down: it loads no module from disk, so a
// signed GRUB runs a configuration only with the modules built into it.
// These helpers say which modules a configuration needs and which ones a
// GRUB image has, so that a mismatch fails the build instead of silently
// dropping the serial console (or worse) at boot.

// commandModules maps each command Kiln's configurations use to the GRUB
// module that provides it ("" for commands of GRUB's kernel).
var commandModules = map[string]string{
	"set":             "",
	"insmod":          "",
	"serial":          "serial",
	"terminal_input":  "terminal",
	"terminal_output": "terminal",
	"search":          "search",
	"menuentry":       "normal",
	"linux":           "linux",
	"initrd":          "linux",
	"boot":            "boot",
	"configfile":      "configfile",
	"source":          "configfile",
	"echo":            "echo",
}

// NeededModules lists the modules a GRUB configuration's commands come
// from, sorted. A command Kiln does not know is an error, so that a new
// command in Kiln's configurations is mapped here before it ships.
func NeededModules(cfg string) ([]string, error) {
	seen := map[string]bool{}
	var out []string
	for _, line := range strings.Split(cfg, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") || line == "}" {
			continue
		}
		cmd := strings.Fields(line)[0]
		if i := strings.IndexByte(cmd, '='); i > 0 {
			continue // a variable assignment
		}
		mod, ok := commandModules[cmd]
		if !ok {
			return nil, fmt.Errorf("GRUB command %q has no known module (bootloader.commandModules)", cmd)
		}
		if mod != "" && !seen[mod] {
			seen[mod] = true
			out = append(out, mod)
		}
	}
	sort.Strings(out)
	return out, nil
}

// GRUB's module area (include/grub/kernel.h): a "mimg" header, then
// objects (modules, the memdisk, the embedded config, public keys) each
// with a type and a size that includes its 8-byte header, each starting at
// the previous one's start plus its size rounded up to 8 bytes (GRUB's
// FOR_MODULES: a public key's size, for one, is not a multiple of 8).
const (
	modInfoMagic = 0x676d696d // "mimg"
	objTypeELF   = 0
)

// EmbeddedModules lists the modules built into a GRUB EFI image (its "mods"
// section), sorted.
func EmbeddedModules(image []byte) ([]string, error) {
	f, err := pe.NewFile(bytes.NewReader(image))
	if err != nil {
		return nil, fmt.Errorf("not a PE image: %w", err)
	}
	s := f.Section("mods")
	if s == nil {
		return nil, errors.New("no \"mods\" section: not a GRUB image")
	}
	mods, err := s.Data()
	if err != nil {
		return nil, err
	}
	if len(mods) < 24 || binary.LittleEndian.Uint32(mods) != modInfoMagic {
		return nil, errors.New("the \"mods\" section has no GRUB module header")
	}
	off, size := binary.LittleEndian.Uint64(mods[8:]), binary.LittleEndian.Uint64(mods[16:])
	if size > uint64(len(mods)) {
		size = uint64(len(mods))
	}
	var out []string
	for p := off; p+8 <= size; {
		typ, n := binary.LittleEndian.Uint32(mods[p:]), uint64(binary.LittleEndian.Uint32(mods[p+4:]))
		if n < 8 || p+n > size {
			return nil, fmt.Errorf("GRUB module at %d has a bad size %d", p, n)
		}
		if typ == objTypeELF {
			name, err := moduleName(mods[p+8 : p+n])
			if err != nil {
				return nil, fmt.Errorf("GRUB module at %d: %w", p, err)
			}
			out = append(out, name)
		}
		p += (n + 7) &^ 7
	}
	sort.Strings(out)
	return out, nil
}

// moduleName reads a GRUB module's name from its ".modname" section.
func moduleName(obj []byte) (string, error) {
	f, err := elf.NewFile(bytes.NewReader(obj))
	if err != nil {
		return "", err
	}
	s := f.Section(".modname")
	if s == nil {
		return "", errors.New("no .modname section")
	}
	b, err := s.Data()
	if err != nil {
		return "", err
	}
	return string(bytes.TrimRight(b, "\x00")), nil
}

// checkModules fails when cfg needs a module image does not have.
func checkModules(image []byte, imageName, cfg, cfgName string) error {
	need, err := NeededModules(cfg)
	if err != nil {
		return err
	}
	have, err := EmbeddedModules(image)
	if err != nil {
		return fmt.Errorf("%s: %w", imageName, err)
	}
	var missing []string
	for _, m := range need {
		if i := sort.SearchStrings(have, m); i == len(have) || have[i] != m {
			missing = append(missing, m)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("%s lacks the GRUB module(s) %s that %s needs, and a locked-down GRUB cannot load modules from disk", imageName, strings.Join(missing, ", "), cfgName)
	}
	return nil
}
