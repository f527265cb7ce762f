package sbom

import (
	"encoding/json"
	"fmt"
	"net/url"
	"sort"
	"strings"
)

// Listed is one Debian package an SBOM names, read back from its package URL.
type Listed struct {
	Name, Version, Arch string
}

// Contents is what an SBOM says about an image: its format, its Debian
// packages (sorted) and the disk files it gives checksums for.
type Contents struct {
	Format   string // SPDXFormat or CycloneDXFormat
	Packages []Listed
	Files    []File
}

// Parse reads an SPDX 2.3 or CycloneDX 1.6 JSON document, as Kiln writes
// them, back into what kiln verify compares with the manifest.
func Parse(data []byte) (*Contents, error) {
	var probe struct {
		SPDXVersion string `json:"spdxVersion"`
		BOMFormat   string `json:"bomFormat"`
		SpecVersion string `json:"specVersion"`
	}
	if err := json.Unmarshal(data, &probe); err != nil {
		return nil, err
	}
	c := &Contents{}
	switch {
	case probe.SPDXVersion == "SPDX-2.3":
		c.Format = SPDXFormat
		var doc struct {
			Packages []struct {
				Name      string `json:"name"`
				Purpose   string `json:"primaryPackagePurpose"`
				Checksums []struct {
					Algorithm string `json:"algorithm"`
					Value     string `json:"checksumValue"`
				} `json:"checksums"`
				ExternalRefs []struct {
					Type    string `json:"referenceType"`
					Locator string `json:"referenceLocator"`
				} `json:"externalRefs"`
			} `json:"packages"`
		}
		if err := json.Unmarshal(data, &doc); err != nil {
			return nil, err
		}
		for _, p := range doc.Packages {
			if p.Purpose == "FILE" {
				for _, s := range p.Checksums {
					if s.Algorithm == "SHA256" {
						c.Files = append(c.Files, File{Name: p.Name, SHA256: s.Value})
					}
				}
			}
			for _, r := range p.ExternalRefs {
				if r.Type == "purl" && strings.HasPrefix(r.Locator, "pkg:deb/") {
					l, err := parseDebPURL(r.Locator)
					if err != nil {
						return nil, err
					}
					c.Packages = append(c.Packages, l)
				}
			}
		}
	case probe.BOMFormat == "CycloneDX" && probe.SpecVersion == "1.6":
		c.Format = CycloneDXFormat
		type hashes []struct {
			Alg     string `json:"alg"`
			Content string `json:"content"`
		}
		var bom struct {
			Metadata struct {
				Component struct {
					Components []struct {
						Type   string `json:"type"`
						Name   string `json:"name"`
						Hashes hashes `json:"hashes"`
					} `json:"components"`
				} `json:"component"`
			} `json:"metadata"`
			Components []struct {
				PURL string `json:"purl"`
			} `json:"components"`
		}
		if err := json.Unmarshal(data, &bom); err != nil {
			return nil, err
		}
		for _, f := range bom.Metadata.Component.Components {
			for _, h := range f.Hashes {
				if f.Type == "file" && h.Alg == "SHA-256" {
					c.Files = append(c.Files, File{Name: f.Name, SHA256: h.Content})
				}
			}
		}
		for _, comp := range bom.Components {
			if strings.HasPrefix(comp.PURL, "pkg:deb/") {
				l, err := parseDebPURL(comp.PURL)
				if err != nil {
					return nil, err
				}
				c.Packages = append(c.Packages, l)
			}
		}
	default:
		return nil, fmt.Errorf("neither an SPDX 2.3 nor a CycloneDX 1.6 document")
	}
	sort.Slice(c.Packages, func(i, j int) bool {
		a, b := c.Packages[i], c.Packages[j]
		if a.Name != b.Name {
			return a.Name < b.Name
		}
		return a.Arch < b.Arch
	})
	return c, nil
}

// parseDebPURL reads pkg:deb/VENDOR/NAME@VERSION?arch=ARCH&...
func parseDebPURL(s string) (Listed, error) {
	rest := strings.TrimPrefix(s, "pkg:deb/")
	rest, query, _ := strings.Cut(rest, "?")
	_, nameVer, ok := strings.Cut(rest, "/")
	name, ver, ok2 := strings.Cut(nameVer, "@")
	if !ok || !ok2 {
		return Listed{}, fmt.Errorf("package URL %q has no NAME@VERSION", s)
	}
	var l Listed
	var err error
	if l.Name, err = url.PathUnescape(name); err != nil {
		return Listed{}, fmt.Errorf("package URL %q: %w", s, err)
	}
	if l.Version, err = url.PathUnescape(ver); err != nil {
		return Listed{}, fmt.Errorf("package URL %q: %w", s, err)
	}
	q, err := url.ParseQuery(query)
	if err != nil {
		return Listed{}, fmt.Errorf("package URL %q: %w", s, err)
	}
	l.Arch = q.Get("arch")
	return l, nil
}
