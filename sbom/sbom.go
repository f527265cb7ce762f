// Package sbom describes what an image contains as standard software bills
// of materials: SPDX 2.3 (sbom.spdx.json) and CycloneDX 1.6
// (sbom.cdx.json), both made from the final tree's dpkg database. Every
// installed package is listed with its version, architecture, source
// package, maintainer (as supplier), a package URL of the form syft writes
// and grype reads (pkg:deb/debian/NAME@VERSION?arch=ARCH&distro=debian-12)
// and its licenses, read from machine-readable /usr/share/doc/*/copyright
// files and mapped to SPDX identifiers. The image itself is the described
// root element, with each disk output and its sha256.
//
// The documents are deterministic: the same tree, image and outputs give
// the same bytes; their time is the build's source date.
//
// It reads trees through internal/fsroot and writes nothing itself; the
// builder writes the files. Packages lists what an SBOM names, for kiln
// verify.
package sbom

import (
	"crypto/sha256"
	"fmt"
	"os"
	"path"
	"strings"
	"time"

	"github.com/kiln-build/kiln/internal/dpkg"
	"github.com/kiln-build/kiln/internal/fsroot"
)

// File names inside an artifact.
const (
	SPDXFile      = "sbom.spdx.json"
	CycloneDXFile = "sbom.cdx.json"
)

// Format names, as the manifest records them.
const (
	SPDXFormat      = "spdx-2.3"
	CycloneDXFormat = "cyclonedx-1.6"
)

// Package is one installed package with its license.
type Package struct {
	dpkg.Package
	// License is an SPDX license expression, or NoAssertion.
	License string
}

// Distro identifies the tree's distribution, from /etc/os-release.
type Distro struct {
	ID         string // "debian"
	VersionID  string // "12"; empty for testing and unstable
	Codename   string // "bookworm"
	PrettyName string
}

// PURLDistro is the distro qualifier of the tree's package URLs:
// "debian-12", or "debian-trixie" when there is no version number yet.
func (d Distro) PURLDistro() string {
	switch {
	case d.ID == "":
		return ""
	case d.VersionID != "":
		return d.ID + "-" + d.VersionID
	case d.Codename != "":
		return d.ID + "-" + d.Codename
	}
	return d.ID
}

// Inventory is what a tree holds.
type Inventory struct {
	Distro   Distro
	Packages []Package // sorted by name, then architecture
	// LicenseRefs maps each LicenseRef- identifier the packages use to the
	// Debian license name it stands for.
	LicenseRefs map[string]string
}

// Read takes the inventory of a Debian root tree.
func Read(tree string) (*Inventory, error) {
	pkgs, err := dpkg.Installed(tree)
	if err != nil {
		return nil, err
	}
	inv := &Inventory{Distro: readOSRelease(tree), LicenseRefs: map[string]string{}}
	for _, p := range pkgs {
		lic := NoAssertion
		if data, err := fsroot.ReadFile(tree, path.Join("/usr/share/doc", p.Name, "copyright")); err == nil {
			lic = copyrightLicense(data, inv.LicenseRefs)
		} else if !os.IsNotExist(err) {
			return nil, fmt.Errorf("reading the copyright file of %s: %w", p.Name, err)
		}
		inv.Packages = append(inv.Packages, Package{Package: p, License: lic})
	}
	return inv, nil
}

func readOSRelease(tree string) Distro {
	data, err := fsroot.ReadFile(tree, "/etc/os-release")
	if err != nil {
		if data, err = fsroot.ReadFile(tree, "/usr/lib/os-release"); err != nil {
			return Distro{}
		}
	}
	var d Distro
	for _, line := range strings.Split(string(data), "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), "=")
		if !ok {
			continue
		}
		v = strings.Trim(v, `"'`)
		switch k {
		case "ID":
			d.ID = v
		case "VERSION_ID":
			d.VersionID = v
		case "VERSION_CODENAME":
			d.Codename = v
		case "PRETTY_NAME":
			d.PrettyName = v
		}
	}
	return d
}

// Image is the image an SBOM describes.
type Image struct {
	Name    string
	Version string
	Created time.Time // the build's source date
	Tool    string    // "kiln 0.3.0"
	Files   []File    // the disk outputs
}

// File is one disk output of the image.
type File struct {
	Name   string
	SHA256 string
}

// PURL is the package URL of p in distro (PURLDistro): the form syft
// writes and grype reads, with the epoch kept and "+" percent-encoded.
func PURL(vendor string, p dpkg.Package, distro string) string {
	if vendor == "" {
		vendor = "debian"
	}
	s := "pkg:deb/" + purlEscape(vendor) + "/" + purlEscape(p.Name) + "@" + purlEscape(p.Version)
	var q []string
	if p.Arch != "" {
		q = append(q, "arch="+purlEscape(p.Arch))
	}
	if distro != "" {
		q = append(q, "distro="+purlEscape(distro))
	}
	if len(q) > 0 {
		s += "?" + strings.Join(q, "&")
	}
	return s
}

// purlEscape percent-encodes all but unreserved characters and ':'.
func purlEscape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte(".-_~:", c) >= 0 {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

// uuidFor is a name-based UUID (version 5 layout over SHA-256) for the
// given parts: the same parts give the same UUID.
func uuidFor(parts ...string) string {
	h := sha256.Sum256([]byte(strings.Join(parts, "\x00")))
	u := h[:16]
	u[6] = u[6]&0x0f | 0x50
	u[8] = u[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])
}

// supplier splits a Maintainer field, "Name <email>", and says whether it
// names a team rather than a person.
func supplier(maintainer string) (name, email string, team bool) {
	name, rest, ok := strings.Cut(maintainer, "<")
	name = strings.TrimSpace(name)
	if ok {
		email = strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), ">"))
	}
	l := strings.ToLower(name)
	for _, w := range []string{"maintainers", "team", "developers", "group", "project", "packagers"} {
		if strings.Contains(l, w) {
			team = true
		}
	}
	return name, email, team
}
