package sbom

import (
	"bytes"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"time"

	spdxjson "github.com/spdx/tools-golang/json"
	"github.com/spdx/tools-golang/spdx/v2/common"
	spdx "github.com/spdx/tools-golang/spdx/v2/v2_3"
)

// spdxIDRE is what SPDX allows in an element ID after "SPDXRef-".
var spdxIDRE = regexp.MustCompile(`[^A-Za-z0-9.-]+`)

// SPDX writes the SPDX 2.3 JSON document of an image.
func SPDX(img Image, inv *Inventory) ([]byte, error) {
	sums := []string{"spdx", img.Name, img.Version}
	for _, f := range img.Files {
		sums = append(sums, f.Name, f.SHA256)
	}
	doc := &spdx.Document{
		SPDXVersion:       spdx.Version,
		DataLicense:       spdx.DataLicense,
		SPDXIdentifier:    "DOCUMENT",
		DocumentName:      img.Name + "-" + img.Version,
		DocumentNamespace: "https://github.com/kiln-build/kiln/spdx/" + img.Name + "-" + img.Version + "-" + uuidFor(sums...),
		CreationInfo: &spdx.CreationInfo{
			Creators: []common.Creator{{CreatorType: "Tool", Creator: strings.ReplaceAll(img.Tool, " ", "-")}},
			Created:  img.Created.UTC().Format(time.RFC3339),
		},
	}
	root := common.ElementID("Image")
	desc := "Disk image built by Kiln"
	if inv.Distro.PrettyName != "" {
		desc += " from " + inv.Distro.PrettyName
	}
	doc.Packages = append(doc.Packages, &spdx.Package{
		PackageName: img.Name, PackageSPDXIdentifier: root, PackageVersion: img.Version,
		PackageDownloadLocation: NoAssertion, FilesAnalyzed: false, IsFilesAnalyzedTagPresent: true,
		PackageLicenseConcluded: NoAssertion, PackageLicenseDeclared: NoAssertion, PackageCopyrightText: NoAssertion,
		PackageDescription: desc, PrimaryPackagePurpose: "OPERATING_SYSTEM",
	})
	rel := func(a common.ElementID, typ string, b common.ElementID) {
		doc.Relationships = append(doc.Relationships, &spdx.Relationship{
			RefA: common.MakeDocElementID("", string(a)), RefB: common.MakeDocElementID("", string(b)), Relationship: typ})
	}
	rel("DOCUMENT", "DESCRIBES", root)

	used := map[string]bool{}
	for _, f := range img.Files {
		id := common.ElementID("Output-" + spdxIDRE.ReplaceAllString(f.Name, "-"))
		if used[string(id)] {
			return nil, fmt.Errorf("two outputs named %s", f.Name)
		}
		used[string(id)] = true
		doc.Packages = append(doc.Packages, &spdx.Package{
			PackageName: f.Name, PackageSPDXIdentifier: id, PackageFileName: f.Name, PackageVersion: img.Version,
			PackageDownloadLocation: NoAssertion, FilesAnalyzed: false, IsFilesAnalyzedTagPresent: true,
			PackageChecksums:        []common.Checksum{{Algorithm: common.SHA256, Value: f.SHA256}},
			PackageLicenseConcluded: NoAssertion, PackageLicenseDeclared: NoAssertion, PackageCopyrightText: NoAssertion,
			PackageDescription: "A disk file of " + img.Name + " " + img.Version, PrimaryPackagePurpose: "FILE",
		})
		rel(id, "GENERATED_FROM", root)
	}

	for _, p := range inv.Packages {
		base := "Package-deb-" + spdxIDRE.ReplaceAllString(p.Name+"-"+p.Arch, "-")
		id := base
		for n := 2; used[id]; n++ {
			id = fmt.Sprintf("%s-%d", base, n)
		}
		used[id] = true
		sp := &spdx.Package{
			PackageName: p.Name, PackageSPDXIdentifier: common.ElementID(id), PackageVersion: p.Version,
			PackageDownloadLocation: NoAssertion, FilesAnalyzed: false, IsFilesAnalyzedTagPresent: true,
			PackageSourceInfo:       "built package from: " + p.Source + " " + p.SourceVersion,
			PackageLicenseConcluded: NoAssertion, PackageLicenseDeclared: p.License, PackageCopyrightText: NoAssertion,
			PackageExternalReferences: []*spdx.PackageExternalReference{{
				Category: common.CategoryPackageManager, RefType: common.TypePackageManagerPURL,
				Locator: PURL(inv.Distro.ID, p.Package, inv.Distro.PURLDistro()),
			}},
		}
		if name, email, team := supplier(p.Maintainer); name != "" {
			typ := "Person"
			if team {
				typ = "Organization"
			}
			if email != "" {
				name += " (" + email + ")"
			}
			sp.PackageSupplier = &common.Supplier{Supplier: name, SupplierType: typ}
		}
		if strings.HasPrefix(p.Homepage, "http://") || strings.HasPrefix(p.Homepage, "https://") {
			sp.PackageHomePage = p.Homepage
		}
		doc.Packages = append(doc.Packages, sp)
		rel(root, "CONTAINS", common.ElementID(id))
	}

	refs := make([]string, 0, len(inv.LicenseRefs))
	for r := range inv.LicenseRefs {
		refs = append(refs, r)
	}
	sort.Strings(refs)
	for _, r := range refs {
		name := inv.LicenseRefs[r]
		doc.OtherLicenses = append(doc.OtherLicenses, &spdx.OtherLicense{
			LicenseIdentifier: r, LicenseName: name,
			ExtractedText: fmt.Sprintf("The license Debian's machine-readable copyright files name %q; its text is in the License paragraphs of the /usr/share/doc/*/copyright files that use it.", name),
		})
	}

	var b bytes.Buffer
	if err := spdxjson.Write(doc, &b, spdxjson.Indent("  "), spdxjson.EscapeHTML(false)); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}
