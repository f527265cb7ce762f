package boottest

import (
	"path/filepath"

	"github.com/kiln-build/kiln/internal/qemu"
	"github.com/kiln-build/kiln/platform"
)

// Refusals are what OVMF prints when Secure Boot refuses to start a boot
// loader ("BdsDxe: failed to load Boot0001 ... : Access Denied"; the EFI
// status of an image that no db key vouches for). A boot under Secure Boot
// stops as soon as the console shows one.
var Refusals = []string{"Access Denied", "Security Violation"}

// apply sets up o for a boot under b with d: the firmware (Secure Boot or
// not) and its NVRAM copy in work, the TPM's state in work, and the
// refusals that end a Secure Boot boot early.
func (d Devices) apply(o *qemu.Options, b platform.Boot, work string) error {
	o.CPUs = d.CPUs
	o.TCGCPU = d.TCGCPU
	if d.TPM {
		o.TPM = &qemu.TPM{StateDir: filepath.Join(work, "tpm")}
	}
	if b != platform.BootUEFI {
		return nil
	}
	o.Firmware = qemu.UEFI
	o.VarsFile = filepath.Join(work, "vars-uefi.fd")
	if !d.SecureBoot {
		return nil
	}
	fw, err := SecureBootFirmware(d.SecureBootVars)
	if err != nil {
		return err
	}
	o.UEFI = fw
	o.StopOn = append(o.StopOn, Refusals...)
	return nil
}

// SecureBootFirmware finds Secure Boot firmware through QEMU's descriptors:
// with vars empty, a build whose NVRAM template has Microsoft's keys
// enrolled and Secure Boot enforced (features secure-boot and
// enrolled-keys); else the Secure Boot code with vars as the template.
func SecureBootFirmware(vars string) (*qemu.UEFIFirmware, error) {
	fw, err := qemu.FindUEFI(qemu.FirmwareQuery{SecureBoot: true, EnrolledKeys: vars == ""})
	if err != nil {
		return nil, err
	}
	if vars != "" {
		own := *fw
		own.VarsTemplate, own.VarsFormat = vars, "raw"
		fw = &own
	}
	return fw, nil
}
