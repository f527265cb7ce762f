// Package parttype is the one table of partition types Kiln knows: the
// aliases a recipe may write, with the GPT type GUID and MBR type byte of
// each (from the UEFI specification and the Discoverable Partitions
// Specification), and what such a partition normally holds.
package parttype

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// Type is one partition type.
type Type struct {
	Alias string // as written in recipes; "" for a raw type
	GUID  string // GPT partition type GUID; "" when the type has no GPT form
	MBR   byte   // MBR partition type byte; 0 when the type has no MBR form
	FS    string // usual filesystem: ext4, vfat, swap, or "" (none)
	Mount string // usual mount point, "" if none
}

// Known types, by alias.
var (
	ESP  = Type{Alias: "esp", GUID: "C12A7328-F81F-11D2-BA4B-00A0C93EC93B", MBR: 0xEF, FS: "vfat", Mount: "/boot/efi"} // SD_GPT_ESP
	BIOS = Type{Alias: "bios", GUID: "21686148-6449-6E6F-744E-656564454649"}                                           // GRUB's BIOS boot partition: GPT only
	Root = Type{Alias: "root", GUID: "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709", MBR: 0x83, FS: "ext4", Mount: "/"}        // SD_GPT_ROOT_X86_64
	// Linux is generic Linux data (what /boot and other filesystems use).
	Linux = Type{Alias: "linux", GUID: "0FC63DAF-8483-4772-8E79-3D69D8477DE4", MBR: 0x83, FS: "ext4"}
	Swap  = Type{Alias: "swap", GUID: "0657FD6D-A4AB-43C4-84E5-0933C84B4F4F", MBR: 0x82, FS: "swap"}                 // SD_GPT_SWAP
	Home  = Type{Alias: "home", GUID: "933AC7E1-2EB4-4F13-B844-0E14E2AEF915", MBR: 0x83, FS: "ext4", Mount: "/home"} // SD_GPT_HOME
	Var   = Type{Alias: "var", GUID: "4D21B016-B534-45C2-A9FB-5C16E091FD2D", MBR: 0x83, FS: "ext4", Mount: "/var"}   // SD_GPT_VAR
)

// All lists the aliases in the order documentation shows them.
var All = []Type{ESP, BIOS, Root, Linux, Swap, Home, Var}

var guidRE = regexp.MustCompile(`^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$`)

// IsGUID reports whether s is written as a GUID.
func IsGUID(s string) bool { return guidRE.MatchString(s) }

// Parse reads an alias, a GPT type GUID or an MBR type byte ("0x83").
func Parse(s string) (Type, error) {
	for _, t := range All {
		if strings.EqualFold(s, t.Alias) {
			return t, nil
		}
	}
	if IsGUID(s) {
		g := strings.ToUpper(s)
		for _, t := range All {
			if t.GUID == g {
				return t, nil
			}
		}
		return Type{GUID: g}, nil
	}
	if strings.HasPrefix(strings.ToLower(s), "0x") {
		v, err := strconv.ParseUint(s[2:], 16, 8)
		if err == nil && v != 0 {
			for _, t := range All {
				if t.MBR == byte(v) && t.Alias != "root" && t.Alias != "home" && t.Alias != "var" {
					return t, nil
				}
			}
			return Type{MBR: byte(v)}, nil
		}
	}
	return Type{}, fmt.Errorf("%q is not a partition type", s)
}

// Aliases returns the aliases, for messages.
func Aliases() []string {
	out := make([]string, len(All))
	for i, t := range All {
		out[i] = t.Alias
	}
	return out
}
