// Package platform names what an image is built to boot on: the firmware it
// supports, the one firmware a virtual machine boots it under, and its
// partition table. Every package that speaks of boot modes (recipes, disk,
// manifest, boottest) uses these types, so a firmware is never a bare string.
//
// It holds names and their rules only; it does not plan disks, install
// bootloaders or start virtual machines.
package platform

import "fmt"

// Firmware is the boot mode an image supports.
type Firmware string

const (
	UEFI   Firmware = "uefi"
	BIOS   Firmware = "bios"
	Hybrid Firmware = "hybrid" // both: a BIOS boot partition and an ESP, as Debian's cloud images
)

// Firmwares lists every firmware a recipe may name, in documentation order.
var Firmwares = []Firmware{UEFI, BIOS, Hybrid}

// HasUEFI and HasBIOS report which firmware an image boots under.
func (f Firmware) HasUEFI() bool { return f == UEFI || f == Hybrid }
func (f Firmware) HasBIOS() bool { return f == BIOS || f == Hybrid }

// Valid reports whether f is one of Firmwares.
func (f Firmware) Valid() bool { return f == UEFI || f == BIOS || f == Hybrid }

// Boots lists the firmware a test boots an image under: one boot for uefi
// or bios, two for hybrid (UEFI first).
func (f Firmware) Boots() []Boot {
	var b []Boot
	if f.HasUEFI() {
		b = append(b, BootUEFI)
	}
	if f.HasBIOS() {
		b = append(b, BootBIOS)
	}
	return b
}

// Boot is the one firmware a virtual machine starts an image under. It is
// a type of its own so that "boot this under hybrid" does not compile.
type Boot string

const (
	BootUEFI Boot = "uefi"
	BootBIOS Boot = "bios"
)

// ParseBoot reads a firmware name given to a command (kiln test --firmware).
func ParseBoot(s string) (Boot, error) {
	switch Boot(s) {
	case BootUEFI, BootBIOS:
		return Boot(s), nil
	}
	return "", fmt.Errorf("unknown firmware %q: use uefi or bios", s)
}

// Firmware is the image firmware that supports exactly this boot.
func (b Boot) Firmware() Firmware { return Firmware(b) }

// Table is a partition table format.
type Table string

const (
	GPT Table = "gpt"
	MBR Table = "mbr"
)

// Tables lists every partition table a recipe may name.
var Tables = []Table{GPT, MBR}

// Valid reports whether t is one of Tables.
func (t Table) Valid() bool { return t == GPT || t == MBR }

// SecureBoot is how an image's UEFI boot path is signed.
type SecureBoot string

const (
	// SecureBootOff: Kiln's own unsigned GRUB; firmware that enforces
	// Secure Boot refuses it.
	SecureBootOff SecureBoot = "off"
	// SecureBootDistro: the distribution's signed shim, GRUB and kernel,
	// trusted through the Microsoft UEFI CA that firmwares ship.
	SecureBootDistro SecureBoot = "distro"
	// SecureBootCustom: a GRUB and kernel Kiln signs with the user's key,
	// trusted by firmware that has the user's certificate in db.
	SecureBootCustom SecureBoot = "custom"
)

// SecureBoots lists every Secure Boot mode a recipe may name.
var SecureBoots = []SecureBoot{SecureBootOff, SecureBootDistro, SecureBootCustom}

// Valid reports whether s is one of SecureBoots.
func (s SecureBoot) Valid() bool {
	return s == SecureBootOff || s == SecureBootDistro || s == SecureBootCustom
}

// Enabled reports whether the image is signed for Secure Boot.
func (s SecureBoot) Enabled() bool { return s == SecureBootDistro || s == SecureBootCustom }

// TCGCPU is the CPU a test VM gets when QEMU emulates it (TCG). Under KVM
// a test VM gets the host's CPU; TCG offers these levels.
type TCGCPU string

const (
	// TCGCPUv2AES is x86-64-v2 with AES-NI and PCLMULQDQ, no AVX: the
	// level clouds give virtual machines, above Debian's amd64 baseline.
	// The default: it boots faster under TCG than TCGCPUMax.
	TCGCPUv2AES TCGCPU = "x86-64-v2-aes"
	// TCGCPUMax is every feature TCG emulates, AVX2 included, for software
	// built for x86-64-v3.
	TCGCPUMax TCGCPU = "max"
)

// TCGCPUs lists every TCG CPU level, the default first.
var TCGCPUs = []TCGCPU{TCGCPUv2AES, TCGCPUMax}

// Valid reports whether c is one of TCGCPUs.
func (c TCGCPU) Valid() bool { return c == TCGCPUv2AES || c == TCGCPUMax }
