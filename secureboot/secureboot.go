// Package secureboot says what signs a disk image's UEFI boot path and
// whether a cloud platform's default Secure Boot keys would start it.
//
// ReadESP finds the EFI system partition of any virtual disk (GPT or MBR),
// reads it with Kiln's read-only FAT reader (no mount) and describes every
// EFI binary on it: path, sha256 and Authenticode signers
// (internal/authenticode). Check holds such a chain to a platform's rules:
// the removable-path loader EFI/BOOT/BOOTX64.EFI must be signed by a
// certificate authority in the platform's default db, and the second stage
// a shim starts must be there and signed.
//
// It does not verify signatures cryptographically or follow certificate
// chains (the firmware does), read the kernel on the root filesystem (shim
// and GRUB check it against the distribution's CA, not the platform's db;
// Kiln's manifest records it), or build anything.
package secureboot

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"path"
	"sort"
	"strings"

	"github.com/kiln-build/kiln/disk"
	"github.com/kiln-build/kiln/internal/authenticode"
	"github.com/kiln-build/kiln/internal/fat32"
	"github.com/kiln-build/kiln/internal/parttype"
)

// File is one EFI binary of a boot chain.
type File struct {
	Path    string                `json:"path"` // on the ESP, e.g. EFI/BOOT/BOOTX64.EFI
	SHA256  string                `json:"sha256"`
	Signers []authenticode.Signer `json:"signers"`
}

// Describe returns what data, an EFI binary at path, is and who signed it.
// ok is false when data is not a PE image (a configuration file, say).
func Describe(path string, data []byte) (f File, ok bool, err error) {
	signers, err := authenticode.Signers(data)
	if errors.Is(err, authenticode.ErrNotPE) {
		return File{}, false, nil
	}
	if err != nil {
		return File{}, false, fmt.Errorf("reading the signatures of %s: %w", path, err)
	}
	sum := sha256.Sum256(data)
	if signers == nil {
		signers = []authenticode.Signer{}
	}
	return File{Path: path, SHA256: hex.EncodeToString(sum[:]), Signers: signers}, true, nil
}

// maxEFIFile bounds what ReadESP reads of one file.
const maxEFIFile = 64 << 20

// ReadESP reads the EFI binaries under EFI/ on the disk's EFI system
// partition, sorted by path. A disk without an ESP is an error.
func ReadESP(r io.ReaderAt, size int64) ([]File, error) {
	in, err := disk.Inspect(r, size)
	if err != nil {
		return nil, err
	}
	var esp *disk.Found
	for i, p := range in.Partitions {
		if strings.EqualFold(p.TypeGUID, parttype.ESP.GUID) || (in.Table == "mbr" && p.TypeMBR == parttype.ESP.MBR) {
			esp = &in.Partitions[i]
			break
		}
	}
	if esp == nil {
		return nil, errors.New("the disk has no EFI system partition")
	}
	fs, err := fat32.Open(r, int64(esp.Start), int64(esp.Size))
	if err != nil {
		return nil, fmt.Errorf("the EFI system partition (partition %d): %w", esp.Number, err)
	}
	var files []File
	var walk func(dir string, depth int) error
	walk = func(dir string, depth int) error {
		if depth > 4 {
			return nil
		}
		entries, err := fs.ReadDir(dir)
		if err != nil {
			return err
		}
		for _, e := range entries {
			p := path.Join(dir, e.Name)
			if e.Dir {
				if err := walk(p, depth+1); err != nil {
					return err
				}
				continue
			}
			if !strings.EqualFold(path.Ext(e.Name), ".efi") {
				continue
			}
			data, err := fs.ReadFile(p, maxEFIFile)
			if err != nil {
				return err
			}
			f, ok, err := Describe(p, data)
			if err != nil {
				return err
			}
			if ok {
				files = append(files, f)
			}
		}
		return nil
	}
	if err := walk("EFI", 0); err != nil && !fat32.IsNotExist(err) {
		return nil, fmt.Errorf("reading the EFI system partition: %w", err)
	}
	sort.Slice(files, func(i, j int) bool { return files[i].Path < files[j].Path })
	return files, nil
}

// Platform is a cloud's Secure Boot defaults, as far as Check needs them.
type Platform struct {
	Name string
	// TrustedCAs are the common names of the certificate authorities in the
	// platform's default db whose signatures start a loader.
	TrustedCAs []string
	// CustomKeys says how to add your own certificate to the db, for
	// images signed with your own key.
	CustomKeys string
}

// Platforms are the clouds kiln verify knows Secure Boot defaults of. The
// sources and assumptions are in docs/boot-modes.md.
var Platforms = map[string]Platform{
	"azure": {
		Name:       "Azure Trusted Launch",
		TrustedCAs: []string{"Microsoft Corporation UEFI CA 2011", "Microsoft Windows Production PCA 2011"},
		CustomKeys: "Azure's default db trusts only Microsoft's CAs; an image signed with your own key needs your certificate in the VM's db (Azure Compute Gallery image versions take UEFI settings with additional db signatures), else use secure_boot = \"distro\"",
	},
	"gcp": {
		Name:       "GCP Shielded VM",
		TrustedCAs: []string{"Microsoft Corporation UEFI CA 2011", "Microsoft Windows Production PCA 2011"},
		CustomKeys: "create the image with your certificate in its db: gcloud compute images create ... --signature-database-file=db.der (DER), or use secure_boot = \"distro\"",
	},
}

// Readiness is Check's verdict.
type Readiness struct {
	Platform string   `json:"platform"`
	Ready    bool     `json:"ready"`
	Chain    []File   `json:"chain"`
	Problems []string `json:"problems"`
	Notes    []string `json:"notes"`
}

// Check says whether p's default Secure Boot keys would start the chain.
func Check(chain []File, p Platform) Readiness {
	r := Readiness{Platform: p.Name, Chain: chain, Problems: []string{}, Notes: []string{}}
	find := func(name string) *File {
		for i := range chain {
			if strings.EqualFold(chain[i].Path, name) {
				return &chain[i]
			}
		}
		return nil
	}
	first := find("EFI/BOOT/BOOTX64.EFI")
	if first == nil {
		r.Problems = append(r.Problems, "there is no EFI/BOOT/BOOTX64.EFI: the firmware finds no boot loader on the removable-media path")
		return r
	}
	trusted := func(s authenticode.Signer) bool {
		for _, ca := range p.TrustedCAs {
			if strings.HasSuffix(s.Issuer, "/CN="+ca) {
				return true
			}
		}
		return false
	}
	var byTrusted, stale bool
	for _, s := range first.Signers {
		if trusted(s) {
			byTrusted = true
			stale = stale || !s.DigestOK
		}
	}
	switch {
	case len(first.Signers) == 0:
		r.Problems = append(r.Problems, fmt.Sprintf("EFI/BOOT/BOOTX64.EFI is not signed: %s refuses it with Secure Boot on (build with secure_boot = \"distro\")", p.Name))
	case byTrusted && stale:
		r.Problems = append(r.Problems, "EFI/BOOT/BOOTX64.EFI was changed after it was signed: its Authenticode digest does not match")
	case !byTrusted:
		var who []string
		for _, s := range first.Signers {
			who = append(who, s.Issuer)
		}
		r.Problems = append(r.Problems, fmt.Sprintf("EFI/BOOT/BOOTX64.EFI is signed under %s, not by a CA in %s's default db (%s): %s",
			strings.Join(who, " and "), p.Name, strings.Join(p.TrustedCAs, ", "), p.CustomKeys))
	}
	// A shim starts grubx64.efi beside it (or the MOK manager).
	if grub := find("EFI/BOOT/grubx64.efi"); grub != nil {
		switch {
		case len(grub.Signers) == 0:
			r.Problems = append(r.Problems, "EFI/BOOT/grubx64.efi, which shim starts, is not signed")
		case !grub.Signers[0].DigestOK:
			r.Problems = append(r.Problems, "EFI/BOOT/grubx64.efi was changed after it was signed")
		default:
			r.Notes = append(r.Notes, fmt.Sprintf("shim checks EFI/BOOT/grubx64.efi (signed by %s) against its built-in vendor certificate", grub.Signers[0].Subject))
		}
	}
	if find("EFI/BOOT/fbx64.efi") != nil {
		r.Notes = append(r.Notes, "EFI/BOOT/fbx64.efi (shim's fallback) rewrites the firmware's boot entries at first boot")
	}
	r.Ready = len(r.Problems) == 0
	return r
}
