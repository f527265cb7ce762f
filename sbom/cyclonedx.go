package sbom

import (
	"bytes"
	"strings"
	"time"

	cdx "github.com/CycloneDX/cyclonedx-go"
)

// CycloneDX writes the CycloneDX 1.6 JSON document of an image.
func CycloneDX(img Image, inv *Inventory) ([]byte, error) {
	sums := []string{"cyclonedx", img.Name, img.Version}
	var files []cdx.Component
	for _, f := range img.Files {
		sums = append(sums, f.Name, f.SHA256)
		files = append(files, cdx.Component{
			BOMRef: "file:" + f.Name, Type: cdx.ComponentTypeFile, Name: f.Name, Version: img.Version,
			Hashes: &[]cdx.Hash{{Algorithm: cdx.HashAlgoSHA256, Value: f.SHA256}},
		})
	}
	root := &cdx.Component{
		BOMRef: "image:" + img.Name + "@" + img.Version, Type: cdx.ComponentTypeOS, Name: img.Name, Version: img.Version,
		Description: "Disk image built by Kiln",
	}
	if inv.Distro.PrettyName != "" {
		root.Description += " from " + inv.Distro.PrettyName
	}
	if len(files) > 0 {
		root.Components = &files
	}
	toolName, toolVersion, _ := strings.Cut(img.Tool, " ")
	bom := cdx.NewBOM()
	bom.SerialNumber = "urn:uuid:" + uuidFor(sums...)
	bom.Metadata = &cdx.Metadata{
		Timestamp: img.Created.UTC().Format(time.RFC3339),
		Tools:     &cdx.ToolsChoice{Components: &[]cdx.Component{{Type: cdx.ComponentTypeApplication, Name: toolName, Version: toolVersion}}},
		Component: root,
	}
	comps := []cdx.Component{}
	for _, p := range inv.Packages {
		purl := PURL(inv.Distro.ID, p.Package, inv.Distro.PURLDistro())
		c := cdx.Component{
			BOMRef: purl, Type: cdx.ComponentTypeLibrary, Name: p.Name, Version: p.Version, PackageURL: purl,
			Properties: &[]cdx.Property{
				{Name: "kiln:deb:architecture", Value: p.Arch},
				{Name: "kiln:deb:source", Value: p.Source},
				{Name: "kiln:deb:source_version", Value: p.SourceVersion},
			},
		}
		if name, email, _ := supplier(p.Maintainer); name != "" {
			c.Supplier = &cdx.OrganizationalEntity{Name: name}
			if email != "" {
				c.Supplier.Contact = &[]cdx.OrganizationalContact{{Email: email}}
			}
			c.Publisher = p.Maintainer
		}
		if lic := cdxLicenses(p.License); lic != nil {
			c.Licenses = lic
		}
		comps = append(comps, c)
	}
	bom.Components = &comps
	var b bytes.Buffer
	enc := cdx.NewBOMEncoder(&b, cdx.BOMFileFormatJSON).SetPretty(true).SetEscapeHTML(false)
	if err := enc.EncodeVersion(bom, cdx.SpecVersion1_6); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// cdxLicenses is a single SPDX identifier as a license, anything else as
// an expression, and nothing for NoAssertion.
func cdxLicenses(expr string) *cdx.Licenses {
	switch {
	case expr == "" || expr == NoAssertion:
		return nil
	case !strings.ContainsAny(expr, " ()") && !strings.HasPrefix(expr, "LicenseRef-"):
		return &cdx.Licenses{{License: &cdx.License{ID: expr}}}
	}
	return &cdx.Licenses{{Expression: expr}}
}
