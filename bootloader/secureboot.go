package bootloader

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strings"

	"github.com/kiln-build/kiln/disk"
	"github.com/kiln-build/kiln/internal/authenticode"
	"github.com/kiln-build/kiln/internal/fsroot"
	"github.com/kiln-build/kiln/internal/pgp"
	"github.com/kiln-build/kiln/platform"
)

// Secure Boot, without grub-install or mounts: the UEFI boot path is a set
// of files on the ESP, placed for the removable-media path so that no NVRAM
// entry is needed. docs/boot-modes.md describes both chains.

// distroFile is one file of Debian's signed chain: where the package puts
// it in the tree and where it goes on the ESP.
type distroFile struct {
	tree, esp, pkg string
}

// distroChain is Debian's signed chain on the removable-media path. shim
// (signed by Microsoft) runs grubx64.efi beside it (signed by Debian, and
// checked by shim against Debian's CA), or the MOK manager. There is no
// fbx64.efi: beside shim, the fallback would rewrite the firmware's boot
// entries from BOOT*.CSV files.
var distroChain = []distroFile{
	{"/usr/lib/shim/shimx64.efi.signed", "EFI/BOOT/BOOTX64.EFI", "shim-signed"},
	{"/usr/lib/grub/x86_64-efi-signed/grubx64.efi.signed", "EFI/BOOT/grubx64.efi", "grub-efi-amd64-signed"},
	{"/usr/lib/shim/mmx64.efi.signed", "EFI/BOOT/mmx64.efi", "shim-helpers-amd64-signed"},
}

// DistroGrubPrefix is where Debian's signed GRUB looks for its
// configuration: its built-in prefix is /EFI/debian on the ESP.
const DistroGrubPrefix = "EFI/debian"

// Packages are the Debian packages the bootloaders need in the base. Both
// firmwares' GRUB binaries are always installed (about 6 MB): every boot
// mode then shares one cached base, and an image can later be switched to
// another boot mode without a new bootstrap. Debian's signed chain is added
// for secure_boot = "distro" only (about 20 MB with its dependencies).
func Packages(sb platform.SecureBoot) []string {
	pkgs := []string{"grub-pc-bin", "grub-efi-amd64-bin", "grub-common"}
	if sb == platform.SecureBootDistro {
		for _, f := range distroChain {
			pkgs = append(pkgs, f.pkg)
		}
	}
	return pkgs
}

// distroBootstrap is EFI/debian/grub.cfg: it finds the filesystem holding
// /boot/grub by UUID and hands over to Kiln's real grub.cfg there.
func distroBootstrap(c Config) string {
	return fmt.Sprintf("# Written by kiln. Debian's signed GRUB reads this file (its prefix is /%s);\n# the real configuration is %s/grub/grub.cfg on the filesystem found here.\n%sconfigfile $prefix/grub.cfg\n",
		DistroGrubPrefix, c.BootPrefix, earlyConfig(c))
}

// DefaultGrub is /etc/default/grub for the distro chain. shim-signed
// brings grub2-common, whose kernel hook runs update-grub on every kernel
// upgrade in the guest: it regenerates /boot/grub/grub.cfg from this file,
// which therefore keeps Kiln's serial console and kernel arguments.
// GRUB_DISTRIBUTOR is not "debian", so shim-signed's postinst (which runs
// grub-install when /boot/efi/EFI/<distributor> exists) never rewrites the
// ESP from inside the guest.
func DefaultGrub(c Config) string {
	args := append([]string{"console=tty0", fmt.Sprintf("console=ttyS0,%d", c.speed())}, c.KernelArgs...)
	return fmt.Sprintf(`# Written by kiln. update-grub (run by kernel upgrades) regenerates
# /boot/grub/grub.cfg from this file; the ESP is never touched in the guest.
GRUB_DEFAULT=0
GRUB_TIMEOUT=1
GRUB_DISTRIBUTOR=Kiln
GRUB_CMDLINE_LINUX_DEFAULT=""
GRUB_CMDLINE_LINUX=%q
GRUB_TERMINAL="serial console"
GRUB_SERIAL_COMMAND="serial --unit=0 --speed=%d"
`, strings.Join(args, " "), c.speed())
}

// DistroChain returns the ESP files of Debian's signed chain, read from
// the tree, and the small grub.cfg the signed GRUB reads. It fails, naming
// the package, when the tree lacks a signed binary, and when the signed
// GRUB lacks a module Kiln's configuration needs.
func DistroChain(tree string, c Config) ([]disk.File, error) {
	var files []disk.File
	for _, f := range distroChain {
		data, err := fsroot.ReadFile(tree, f.tree)
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("secure_boot = \"distro\" needs %s from the package %s, which the tree does not have: install %s in the base (Debian bases get it automatically; add it to an image or file base with a packages step)", f.tree, f.pkg, f.pkg)
		}
		if err != nil {
			return nil, err
		}
		files = append(files, disk.File{Path: f.esp, Data: data})
	}
	bootstrap := distroBootstrap(c)
	for _, cfg := range []struct{ name, text string }{{DistroGrubPrefix + "/grub.cfg", bootstrap}, {c.BootPrefix + "/grub/grub.cfg", GrubCfg(c)}} {
		if err := checkModules(files[1].Data, "Debian's signed GRUB ("+distroChain[1].tree+")", cfg.text, cfg.name); err != nil {
			return nil, err
		}
	}
	return append(files, disk.File{Path: DistroGrubPrefix + "/grub.cfg", Data: []byte(bootstrap)}), nil
}

// CustomModules are built into the custom chain's GRUB besides EFIModules:
// its OpenPGP verifier (under Secure Boot, GRUB loads a kernel only when a
// verifier vouches for it) with RSA and SHA-256.
var CustomModules = []string{"pgp", "gcry_rsa", "gcry_sha256"}

// customConfig is embedded into the custom chain's GRUB, which reads no
// configuration from disk: it boots the given kernel and initrd (paths on
// the filesystem holding /boot) at once, with no menu. check_signatures is
// "enforce" while the kernel is read (GRUB's OpenPGP verifier checks
// KERNEL.sig) and "no" for the initrd, which Debian's own chain does not
// verify either and which update-initramfs changes on the running system.
func customConfig(c Config, kernel, initrd string) string {
	args := append([]string{"root=UUID=" + c.RootUUID, "ro", "console=tty0", fmt.Sprintf("console=ttyS0,%d", c.speed())}, c.KernelArgs...)
	return fmt.Sprintf(`serial --unit=0 --speed=%d
terminal_input serial console
terminal_output serial console
search --no-floppy --fs-uuid --set=root %s
echo 'Kiln: booting %s (custom Secure Boot chain)'
set check_signatures=enforce
linux %s %s
set check_signatures=no
initrd %s
boot
`, c.speed(), c.bootUUID(), kernel, kernel, strings.Join(args, " "), initrd)
}

// CustomChain signs the image's boot path with the user's key (secure_boot
// = "custom"): the kernel /boot/vmlinuz-VERSION in the tree is signed in
// place (Authenticode, for the firmware's LoadImage, through which GRUB 2.12
// starts it) and gets a detached OpenPGP signature beside it (for GRUB's
// verifier); GRUB is built with that configuration and the public key
// embedded, and signed. It returns the ESP's files: EFI/BOOT/BOOTX64.EFI.
func CustomChain(ctx context.Context, tree string, c Config, kernelVersion string, kp *authenticode.KeyPair, log io.Writer) ([]disk.File, error) {
	kernel := "/boot/vmlinuz-" + kernelVersion
	data, err := fsroot.ReadFile(tree, kernel)
	if err != nil {
		return nil, fmt.Errorf("reading the kernel to sign: %w", err)
	}
	signed, err := authenticode.Sign(data, kp)
	if err != nil {
		return nil, fmt.Errorf("signing %s: %w", kernel, err)
	}
	created := kp.Cert.NotBefore
	sig, err := pgp.DetachedSignature(kp.Key, created, bytes.NewReader(signed))
	if err != nil {
		return nil, err
	}
	pub, err := pgp.PublicKey(kp.Key, "Kiln Secure Boot key "+kp.Cert.Subject.String(), created)
	if err != nil {
		return nil, err
	}
	if err := fsroot.WriteFile(tree, kernel, signed, 0o644); err != nil {
		return nil, err
	}
	if err := fsroot.WriteFile(tree, kernel+".sig", sig, 0o644); err != nil {
		return nil, err
	}
	// Paths as GRUB sees them: on the filesystem holding /boot.
	cfg := customConfig(c, c.BootPrefix+"/vmlinuz-"+kernelVersion, c.BootPrefix+"/initrd.img-"+kernelVersion)
	modules := append(append([]string{}, EFIModules...), CustomModules...)
	grub, err := mkimage(ctx, tree, mkimageJob{
		format: "x86_64-efi", modules: modules, early: cfg, prefix: c.BootPrefix + "/grub",
		files:   map[string][]byte{"kiln.pub": pub},
		options: []string{"--pubkey", "/tmp/kiln.pub", "--disable-shim-lock"},
	}, log)
	if err != nil {
		return nil, err
	}
	if err := checkModules(grub, "Kiln's GRUB", cfg, "its embedded configuration"); err != nil {
		return nil, err
	}
	signedGrub, err := authenticode.Sign(grub, kp)
	if err != nil {
		return nil, fmt.Errorf("signing GRUB: %w", err)
	}
	return []disk.File{{Path: "EFI/BOOT/BOOTX64.EFI", Data: signedGrub}}, nil
}
