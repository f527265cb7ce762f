package recipes

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"

	"github.com/kiln-build/kiln/internal/authenticode"
	"github.com/kiln-build/kiln/platform"
)

// bootBlockSchema is the boot block: how the image boots.
var bootBlockSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "firmware"}, {Name: "kernel_cmdline"}, {Name: "menu_timeout"}, {Name: "update_at_first_boot"},
		{Name: "secure_boot"}, {Name: "tpm"}, {Name: "tcg_cpu"}, {Name: "secure_boot_key"}, {Name: "secure_boot_certificate"}, {Name: "secure_boot_vars"},
	},
}

var (
	firmwareArg      = arg{"firmware", `"uefi"`, false}
	kernelCmdlineArg = arg{"kernel_cmdline", `["console=ttyS0", "quiet"]`, false}
	menuTimeoutArg   = arg{"menu_timeout", `"5s"`, false}
	firstBootArg     = arg{"update_at_first_boot", `true`, false}
	secureBootArg    = arg{"secure_boot", `"distro"`, false}
	tpmArg           = arg{"tpm", `true`, false}
	tcgCPUArg        = arg{"tcg_cpu", `"max"`, false}
	sbKeyArg         = arg{"secure_boot_key", `"keys/db.key"`, false}
	sbCertArg        = arg{"secure_boot_certificate", `"keys/db.pem"`, false}
	sbVarsArg        = arg{"secure_boot_vars", `"keys/OVMF_VARS.fd"`, false}
)

// maxMenuTimeout bounds boot.menu_timeout: GRUB waits that long at every
// boot.
const maxMenuTimeout = time.Hour

// customArgs are the arguments only secure_boot = "custom" takes, all required there.
var customArgs = []arg{sbKeyArg, sbCertArg, sbVarsArg}

// bootBlock is a decoded boot block.
type bootBlock struct {
	Boot
	src           *decoded
	cmdlineRanges []hcl.Range
	dir           string // the recipe's directory, for the custom key files
}

func defaultBoot() Boot {
	return Boot{Firmware: DefaultFirmware, KernelCmdline: []string{}, SecureBoot: platform.SecureBootOff}
}

// decodeBootBlock decodes a boot block.
func (d *decoder) decodeBootBlock(block *hcl.Block) (*bootBlock, hcl.Diagnostics) {
	content, diags := block.Body.Content(bootBlockSchema)
	b := &bootBlock{Boot: defaultBoot(), src: newDecoded("boot", block.DefRange, content.Attributes), dir: d.dir}
	b.Range = toRange(block.DefRange)
	getName(d, b.src, firmwareArg, &b.Firmware, &diags)
	d.getStrList(b.src, kernelCmdlineArg, &b.KernelCmdline, &b.cmdlineRanges, &diags)
	d.getDuration(b.src, menuTimeoutArg, &b.MenuTimeout, &diags)
	d.getBool(b.src, firstBootArg, &b.UpdateAtFirstBoot, &diags)
	getName(d, b.src, secureBootArg, &b.SecureBoot, &diags)
	d.getBool(b.src, tpmArg, &b.TPM, &diags)
	getName(d, b.src, tcgCPUArg, &b.TCGCPU, &diags)
	d.getStr(b.src, sbKeyArg, &b.SecureBootKey, &diags)
	d.getStr(b.src, sbCertArg, &b.SecureBootCertificate, &diags)
	d.getStr(b.src, sbVarsArg, &b.SecureBootVars, &diags)
	return b, diags
}

// validate checks the decoded values. Whether the firmware can be built
// with the disk's partition table is checkBootMode's business.
func (b *bootBlock) validate() hcl.Diagnostics {
	var diags hcl.Diagnostics
	if a, ok := b.src.valid("firmware"); ok && !b.Firmware.Valid() {
		diags = append(diags, errorDiag(a.Expr.Range(), "Invalid firmware",
			fmt.Sprintf("%q is not a firmware. Use %s; the default is %q.", b.Firmware, quoteList(platform.Firmwares), DefaultFirmware)))
	}
	if a, ok := b.src.valid("menu_timeout"); ok && (b.MenuTimeout < 0 || b.MenuTimeout > maxMenuTimeout || b.MenuTimeout%time.Second != 0) {
		diags = append(diags, errorDiag(a.Expr.Range(), "Invalid menu timeout",
			fmt.Sprintf("GRUB waits whole seconds, from 0 (boot at once, the default) to 1h; %s is not one. Use, for example, menu_timeout = %s.", b.MenuTimeout, menuTimeoutArg.example)))
	}
	if a, ok := b.src.valid("tcg_cpu"); ok && !b.TCGCPU.Valid() {
		diags = append(diags, errorDiag(a.Expr.Range(), "Invalid TCG CPU",
			fmt.Sprintf("%q is not a CPU the test VM can get under TCG. Use %s: %q (the default) is x86-64-v2 with AES-NI and no AVX; %q is every feature QEMU emulates, AVX2 included, for software built for x86-64-v3. Under KVM the test VM gets the host's CPU either way.", b.TCGCPU, quoteList(platform.TCGCPUs), platform.TCGCPUv2AES, platform.TCGCPUMax)))
	}
	for i, arg := range b.KernelCmdline {
		if strings.TrimSpace(arg) == "" || strings.ContainsAny(arg, "\r\n") {
			diags = append(diags, errorDiag(b.cmdlineRanges[i], "Invalid kernel argument",
				fmt.Sprintf("%q cannot go on the kernel command line. Give one argument per list element, such as %s.", arg, kernelCmdlineArg.example)))
		}
	}
	return append(diags, b.validateSecureBoot()...)
}

// validateSecureBoot checks secure_boot and, for custom, that the key and
// certificate can sign (a PEM RSA key without a passphrase, that is the
// certificate's key) and that the variable store is one: all before the
// build starts.
func (b *bootBlock) validateSecureBoot() hcl.Diagnostics {
	var diags hcl.Diagnostics
	sbAttr, sbSet := b.src.valid("secure_boot")
	if sbSet && !b.SecureBoot.Valid() {
		return append(diags, errorDiag(sbAttr.Expr.Range(), "Invalid Secure Boot mode",
			fmt.Sprintf("%q is not a Secure Boot mode. Use %s: \"distro\" boots through the distribution's signed shim, GRUB and kernel; \"custom\" signs GRUB and the kernel with your own key.", b.SecureBoot, quoteList(platform.SecureBoots))))
	}
	if b.SecureBoot.Enabled() && b.Firmware == platform.BIOS {
		diags = append(diags, errorDiag(sbAttr.Expr.Range(), "Secure Boot needs UEFI",
			fmt.Sprintf("secure_boot = %q signs the UEFI boot path, and firmware = \"bios\" has none. Use firmware = \"uefi\" (or \"hybrid\": its BIOS path stays unsigned), or remove secure_boot.", b.SecureBoot)))
	}
	if b.SecureBoot != platform.SecureBootCustom {
		for _, a := range customArgs {
			if attr, ok := b.src.valid(a.name); ok {
				diags = append(diags, errorDiag(attr.NameRange, "Argument needs secure_boot = \"custom\"",
					fmt.Sprintf("%s is the key material of custom Secure Boot; with secure_boot = %q it would be ignored. Set secure_boot = \"custom\", or remove %s.", a.name, b.SecureBoot, a.name)))
			}
		}
		return diags
	}
	if a, ok := b.src.valid("menu_timeout"); ok && b.MenuTimeout > 0 {
		diags = append(diags, errorDiag(a.Expr.Range(), "No boot menu with custom Secure Boot",
			"secure_boot = \"custom\" boots the one kernel Kiln signed, from a GRUB image whose configuration is embedded and signed with it: there is no menu to wait in. Remove menu_timeout, or use secure_boot = \"distro\", whose GRUB reads the usual grub.cfg."))
	}
	var missing []string
	for _, a := range customArgs {
		if b.src.attrs[a.name] == nil {
			missing = append(missing, fmt.Sprintf("%s = %s", a.name, a.example))
		}
	}
	if len(missing) > 0 {
		diags = append(diags, errorDiag(sbAttr.Expr.Range(), "Missing Secure Boot keys",
			fmt.Sprintf("secure_boot = \"custom\" signs with your own key and tests under firmware that trusts it: add %s (paths relative to the recipe).", strings.Join(missing, ", "))))
	}
	keyPEM, keyOK := b.readFile(sbKeyArg, &b.SecureBootKey, &diags)
	certPEM, certOK := b.readFile(sbCertArg, &b.SecureBootCertificate, &diags)
	vars, varsOK := b.readFile(sbVarsArg, &b.SecureBootVars, &diags)
	keyAttr, _ := b.src.valid(sbKeyArg.name)
	certAttr, _ := b.src.valid(sbCertArg.name)
	if keyOK {
		if _, err := authenticode.ParseKey(keyPEM); err != nil {
			keyOK = false
			switch {
			case errors.Is(err, authenticode.ErrEncryptedKey):
				diags = append(diags, errorDiag(keyAttr.Expr.Range(), "Passphrase-protected key",
					fmt.Sprintf("%s is protected by a passphrase, and a build cannot ask for one. Decrypt a copy that only the build can read, for example: openssl pkey -in %s -out db.key (it asks for the passphrase), and point secure_boot_key at it.", b.SecureBootKey, b.SecureBootKey)))
			case errors.Is(err, authenticode.ErrNotRSA):
				diags = append(diags, errorDiag(keyAttr.Expr.Range(), "Not an RSA key",
					fmt.Sprintf("%s: %v. UEFI firmware verifies RSA signatures (RSA-2048 is what every firmware supports): make an RSA key, for example openssl req -new -x509 -newkey rsa:2048 -nodes -keyout db.key -out db.pem -subj /CN=my-db -days 3650.", b.SecureBootKey, err)))
			default:
				diags = append(diags, errorDiag(keyAttr.Expr.Range(), "Invalid private key",
					fmt.Sprintf("%s is not a PEM RSA private key: %v.", b.SecureBootKey, err)))
			}
		}
	}
	if certOK {
		if _, err := authenticode.ParseCertificate(certPEM); err != nil {
			certOK = false
			diags = append(diags, errorDiag(certAttr.Expr.Range(), "Invalid certificate",
				fmt.Sprintf("%s is not a PEM X.509 certificate: %v.", b.SecureBootCertificate, err)))
		}
	}
	if keyOK && certOK {
		if _, err := authenticode.LoadKeyPair(keyPEM, certPEM); err != nil {
			diags = append(diags, errorDiag(keyAttr.Expr.Range(), "Key does not match certificate",
				fmt.Sprintf("The key in %s is not the key of the certificate in %s (%v): firmware that trusts that certificate would refuse what Kiln signs. Give the key that belongs to the certificate.", b.SecureBootKey, b.SecureBootCertificate, err)))
		}
	}
	if varsOK && !isVarStore(vars) {
		a, _ := b.src.valid(sbVarsArg.name)
		diags = append(diags, errorDiag(a.Expr.Range(), "Not an OVMF variable store",
			fmt.Sprintf("%s is not an OVMF/EDK2 variable store (no firmware volume header). Give a copy of OVMF_VARS*.fd with your certificate enrolled in db and Secure Boot enabled, such as Debian's /usr/share/OVMF/OVMF_VARS_4M.snakeoil.fd for its snakeoil key.", b.SecureBootVars)))
	}
	return diags
}

// readFile resolves a path argument against the recipe's directory, stores
// the absolute path in dst and reads the file, reporting a missing one.
func (b *bootBlock) readFile(a arg, dst *string, diags *hcl.Diagnostics) ([]byte, bool) {
	attr, ok := b.src.valid(a.name)
	if !ok {
		return nil, false
	}
	path := *dst
	if path != "" && !filepath.IsAbs(path) {
		path = filepath.Join(b.dir, path)
	}
	fi, err := os.Stat(path)
	if *dst == "" || err != nil || !fi.Mode().IsRegular() {
		*diags = append(*diags, errorDiag(attr.Expr.Range(), "File not found",
			fmt.Sprintf("There is no file %q. %s is relative to the recipe's directory (%s); check the path.", path, a.name, b.dir)))
		return nil, false
	}
	data, err := os.ReadFile(path)
	if err != nil {
		*diags = append(*diags, errorDiag(attr.Expr.Range(), "File not readable", fmt.Sprintf("%s: %v.", path, err)))
		return nil, false
	}
	*dst = path
	return data, true
}

// isVarStore reports whether data starts with an EDK2 firmware volume, as
// OVMF's variable store files do: the "_FVH" signature at offset 40.
func isVarStore(data []byte) bool {
	return len(data) >= 0x1000 && bytes.Equal(data[40:44], []byte("_FVH"))
}
