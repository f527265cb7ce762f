package builder

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/kiln-build/kiln/base"
	"github.com/kiln-build/kiln/internal/fsroot"
	"github.com/kiln-build/kiln/manifest"
	"github.com/kiln-build/kiln/oci"
	"github.com/kiln-build/kiln/recipes"
)

// importBase fills tree from the recipe's base "image", "file" or "oci".
func importBase(ctx context.Context, b recipes.Base, imagesDir, tree, work, kilnVersion string, log io.Writer) (*manifest.Parent, error) {
	scratch := filepath.Join(work, "import")
	if err := os.MkdirAll(scratch, 0o700); err != nil {
		return nil, err
	}
	defer os.RemoveAll(scratch)
	var p *manifest.Parent
	var err error
	switch b.Type {
	case recipes.BaseImage:
		p, err = base.ImportImage(ctx, base.ImageBase{Root: imagesDir, Name: b.Name, Selector: b.VersionSelector, IncludeDeprecated: b.IncludeDeprecated}, tree, scratch, log)
	case recipes.BaseFile:
		p, err = base.ImportFile(ctx, base.FileBase{Path: b.Path, SHA256: b.SHA256}, tree, scratch, log)
	case recipes.BaseOCI:
		p, err = importOCI(ctx, b, imagesDir, tree, scratch, kilnVersion, log)
	default:
		return nil, fmt.Errorf("unknown base type %q", b.Type)
	}
	if err != nil {
		return nil, err
	}
	return p, nil
}

// ociBase is a base "oci"'s reference and how to reach its registry.
func ociBase(b recipes.Base, kilnVersion string, log io.Writer) (oci.Ref, oci.Options, error) {
	ref, err := oci.ParseRef(b.Ref)
	return ref, oci.Options{PlainHTTP: b.PlainHTTP, UserAgent: "kiln/" + kilnVersion, Log: log}, err
}

// importOCI pulls the build a base "oci" names into the catalog (every
// digest checked; a build the catalog has is used as it is), then imports
// that exact build as a base "image" would, recording the reference and
// the artifact's digest.
func importOCI(ctx context.Context, b recipes.Base, imagesDir, tree, scratch, kilnVersion string, log io.Writer) (*manifest.Parent, error) {
	ref, o, err := ociBase(b, kilnVersion, log)
	if err != nil {
		return nil, err
	}
	pulled, err := oci.Pull(ctx, ref, imagesDir, o, time.Now())
	if err != nil {
		return nil, err
	}
	e := pulled.Entry
	fmt.Fprintf(log, "base: %s is %s (%s), in the catalog at %s\n", ref, e.ID(), pulled.Digest, e.Dir)
	p, err := base.ImportImage(ctx, base.ImageBase{Root: imagesDir, Name: e.Name, Selector: e.Version.String(), Build: e.Build, IncludeDeprecated: true}, tree, scratch, log)
	if err != nil {
		return nil, err
	}
	p.Kind, p.Ref, p.Digest = "oci", ref.String(), pulled.Digest
	return p, nil
}

// baseDescription is the base stage's progress line.
func baseDescription(b recipes.Base) string {
	switch b.Type {
	case recipes.BaseImage:
		return fmt.Sprintf("image %s@%s from the catalog", b.Name, b.VersionSelector)
	case recipes.BaseFile:
		return "disk image " + filepath.Base(b.Path)
	case recipes.BaseOCI:
		return "build " + strings.TrimPrefix(b.Ref, oci.Scheme) + " from its registry"
	}
	return fmt.Sprintf("Debian %s (%s)", b.Suite, b.Variant)
}

// requirement is something an imported tree must have for Kiln to finish
// the image, and the Debian package that provides it.
type requirement struct {
	paths   []string // any one of them
	pkg     string
	purpose string
}

// checkImportedTree reports what an imported tree lacks that the rest of
// the pipeline needs: a kernel, systemd, GRUB's binaries for each firmware,
// and (when the root grows at boot) growpart and resize2fs. Kiln does not
// install them behind the recipe's back: the error names the packages, and
// a build step can install them (the build steps run before this check).
func checkImportedTree(tree string, img recipes.Image) error {
	fw := img.Boot.Firmware
	reqs := []requirement{
		{[]string{"/usr/lib/systemd/systemd", "/lib/systemd/systemd"}, "systemd-sysv", "the init system the test boot waits for"},
		{[]string{"/usr/bin/grub-mkimage"}, "grub-common", "making the bootloader"},
		{[]string{"/usr/sbin/mkfs.ext4", "/sbin/mkfs.ext4"}, "e2fsprogs", "filesystem tools in the image"},
	}
	if fw.HasUEFI() {
		reqs = append(reqs, requirement{[]string{"/usr/lib/grub/x86_64-efi/normal.mod"}, "grub-efi-amd64-bin", "booting under UEFI"})
	}
	if fw.HasBIOS() {
		reqs = append(reqs, requirement{[]string{"/usr/lib/grub/i386-pc/boot.img"}, "grub-pc-bin", "booting under BIOS"})
	}
	if img.Disk.Grow {
		reqs = append(reqs, requirement{[]string{"/usr/bin/growpart"}, "cloud-guest-utils", "growing the root at boot (or set disk { grow = false })"})
	}
	var missing, why []string
	for _, r := range reqs {
		ok := false
		for _, p := range r.paths {
			if host, err := fsroot.Resolve(tree, p); err == nil {
				if _, err := os.Stat(host); err == nil {
					ok = true
					break
				}
			}
		}
		if !ok {
			missing = append(missing, r.pkg)
			why = append(why, fmt.Sprintf("%s (%s for %s)", r.paths[0], r.pkg, r.purpose))
		}
	}
	if _, err := kernelVersion(tree); err != nil {
		missing = append(missing, "linux-image-amd64")
		why = append(why, "a kernel in /boot (linux-image-amd64 or linux-image-cloud-amd64)")
	}
	if len(missing) == 0 {
		return nil
	}
	sort.Strings(missing)
	return fmt.Errorf("base: the imported tree lacks what Kiln needs to finish the image: %s.\nAdd a build step that installs them, such as\n  build \"shell\" \"kiln-needs\" { inline = [\"apt-get update\", \"DEBIAN_FRONTEND=noninteractive apt-get install -y %s\"] }",
		strings.Join(why, "; "), strings.Join(missing, " "))
}
