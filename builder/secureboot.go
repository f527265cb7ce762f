package builder

import (
	"context"
	"fmt"
	"os"

	"github.com/kiln-build/kiln/bootloader"
	"github.com/kiln-build/kiln/boottest"
	"github.com/kiln-build/kiln/disk"
	"github.com/kiln-build/kiln/internal/authenticode"
	"github.com/kiln-build/kiln/internal/fsroot"
	"github.com/kiln-build/kiln/manifest"
	"github.com/kiln-build/kiln/platform"
	"github.com/kiln-build/kiln/recipes"
	"github.com/kiln-build/kiln/secureboot"
)

func describeBootloader(s *state) string {
	d := "GRUB for " + string(s.m.Boot.Firmware)
	if sb := s.img.Boot.SecureBoot; sb.Enabled() {
		d += ", Secure Boot: " + string(sb)
	}
	return d
}

// uefiChain returns the ESP files of the UEFI boot path: Kiln's own GRUB,
// or with Secure Boot the distribution's signed chain or one Kiln signs
// with the recipe's key.
func uefiChain(ctx context.Context, s *state) ([]disk.File, error) {
	switch s.img.Boot.SecureBoot {
	case platform.SecureBootDistro:
		return bootloader.DistroChain(s.tree, s.bootCfg)
	case platform.SecureBootCustom:
		kp, err := loadKeyPair(s.img.Boot)
		if err != nil {
			return nil, err
		}
		return bootloader.CustomChain(ctx, s.tree, s.bootCfg, s.m.Kernel, kp, s.log)
	}
	efi, err := bootloader.EFIImage(ctx, s.tree, s.bootCfg, s.log)
	if err != nil {
		return nil, err
	}
	return []disk.File{{Path: "EFI/BOOT/BOOTX64.EFI", Data: efi}}, nil
}

// loadKeyPair reads the recipe's custom signing key and certificate (the
// recipe checked them when it was loaded; they are read again here).
func loadKeyPair(b recipes.Boot) (*authenticode.KeyPair, error) {
	key, err := os.ReadFile(b.SecureBootKey)
	if err != nil {
		return nil, fmt.Errorf("secure boot key: %w", err)
	}
	cert, err := os.ReadFile(b.SecureBootCertificate)
	if err != nil {
		return nil, fmt.Errorf("secure boot certificate: %w", err)
	}
	kp, err := authenticode.LoadKeyPair(key, cert)
	if err != nil {
		return nil, fmt.Errorf("secure boot key %s and certificate %s: %w", b.SecureBootKey, b.SecureBootCertificate, err)
	}
	return kp, nil
}

// bootChain records each EFI binary on the ESP, then the kernel, with its
// sha256 and Authenticode signers.
func bootChain(esp []disk.File, tree, kernelVersion string) ([]manifest.BootFile, error) {
	chain := []manifest.BootFile{}
	add := func(path string, data []byte) error {
		f, ok, err := secureboot.Describe(path, data)
		if err != nil || !ok {
			return err
		}
		bf := manifest.BootFile{Path: f.Path, SHA256: f.SHA256, Signers: []manifest.Signer{}}
		for _, s := range f.Signers {
			bf.Signers = append(bf.Signers, manifest.Signer{Subject: s.Subject, Issuer: s.Issuer})
		}
		chain = append(chain, bf)
		return nil
	}
	for _, f := range esp {
		data := f.Data
		if f.HostPath != "" {
			var err error
			if data, err = os.ReadFile(f.HostPath); err != nil {
				return nil, err
			}
		}
		if err := add(f.Path, data); err != nil {
			return nil, err
		}
	}
	kernel := "/boot/vmlinuz-" + kernelVersion
	data, err := fsroot.ReadFile(tree, kernel)
	if err != nil {
		return nil, fmt.Errorf("reading the kernel for the boot chain: %w", err)
	}
	return chain, add(kernel, data)
}

// testDevices are the test VM's devices for the recipe's boot block.
func testDevices(b recipes.Boot) boottest.Devices {
	return boottest.Devices{SecureBoot: b.SecureBoot.Enabled(), SecureBootVars: b.SecureBootVars, TPM: b.TPM, TCGCPU: b.TCGCPU}
}
