package sbom

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kiln-build/kiln/internal/dpkg"
	"github.com/kiln-build/kiln/internal/testutil"
)

const testStatus = `Package: libc6
Status: install ok installed
Architecture: amd64
Source: glibc (2.36-9+deb12u14)
Version: 2.36-9+deb12u14
Maintainer: GNU Libc Maintainers <debian-glibc@lists.debian.org>
Homepage: https://www.gnu.org/software/libc/libc.html

Package: attr
Status: install ok installed
Architecture: amd64
Version: 1:2.5.1-4+b1
Maintainer: Guillem Jover <guillem@debian.org>

Package: libstdc++6
Status: install ok installed
Architecture: amd64
Source: gcc-12
Version: 12.2.0-14
Maintainer: Debian GCC Maintainers <debian-gcc@lists.debian.org>

Package: tzdata
Status: install ok installed
Architecture: all
Version: 2024a-0+deb12u1
Maintainer: GNU Libc Maintainers <debian-glibc@lists.debian.org>
`

func testTree(t *testing.T) string {
	tree := t.TempDir()
	w := func(p, data string) {
		full := filepath.Join(tree, p)
		require.NoError(t, os.MkdirAll(filepath.Dir(full), 0o755))
		require.NoError(t, os.WriteFile(full, []byte(data), 0o644))
	}
	w("var/lib/dpkg/status", testStatus)
	w("usr/lib/os-release", "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\nVERSION_ID=\"12\"\nVERSION_CODENAME=bookworm\nID=debian\n")
	require.NoError(t, os.MkdirAll(filepath.Join(tree, "etc"), 0o755))
	require.NoError(t, os.Symlink("../usr/lib/os-release", filepath.Join(tree, "etc/os-release")))
	w("usr/share/doc/libc6/copyright", "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\nFiles: *\nCopyright: FSF\nLicense: LGPL-2.1+\n\nFiles: debian/*\nLicense: GPL-2+ with OpenSSL exception\n")
	w("usr/share/doc/attr/copyright", "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\nFiles: *\nLicense: GPL-2+\n")
	w("usr/share/doc/gcc-12-base/copyright", "This is the Debian prepackaged version of the GNU compiler collection.\n")
	// libstdc++6's doc directory is a link to another package's.
	require.NoError(t, os.Symlink("gcc-12-base", filepath.Join(tree, "usr/share/doc/libstdc++6")))
	w("usr/share/doc/tzdata/copyright", "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\nFiles: *\nLicense: public-domain\n")
	return tree
}

func testImage() Image {
	return Image{Name: "web", Version: "1.2.0", Created: time.Unix(1700000000, 0), Tool: "kiln 0.3.0",
		Files: []File{{"web.raw.zst", strings.Repeat("a", 64)}, {"web.qcow2", strings.Repeat("b", 64)}}}
}

func TestRead(t *testing.T) {
	inv, err := Read(testTree(t))
	require.NoError(t, err)
	require.Equal(t, Distro{ID: "debian", VersionID: "12", Codename: "bookworm", PrettyName: "Debian GNU/Linux 12 (bookworm)"}, inv.Distro)
	lic := map[string]string{}
	for _, p := range inv.Packages {
		lic[p.Name] = p.License
	}
	require.Equal(t, map[string]string{
		"attr":       "GPL-2.0-or-later",
		"libc6":      "LGPL-2.1-or-later AND LicenseRef-GPL-2-with-OpenSSL-exception",
		"libstdc++6": NoAssertion, // not machine-readable
		"tzdata":     "LicenseRef-public-domain",
	}, lic)
	require.Equal(t, map[string]string{"LicenseRef-GPL-2-with-OpenSSL-exception": "GPL-2+ with OpenSSL exception", "LicenseRef-public-domain": "public-domain"}, inv.LicenseRefs)
}

func TestPURL(t *testing.T) {
	p := dpkg.Package{Name: "attr", Version: "1:2.4.47-2+b1", Arch: "amd64"}
	require.Equal(t, "pkg:deb/debian/attr@1:2.4.47-2%2Bb1?arch=amd64&distro=debian-12", PURL("debian", p, "debian-12"))
	p = dpkg.Package{Name: "libstdc++6", Version: "12.2.0-14~x", Arch: "amd64"}
	require.Equal(t, "pkg:deb/debian/libstdc%2B%2B6@12.2.0-14~x?arch=amd64&distro=debian-trixie", PURL("", p, Distro{ID: "debian", Codename: "trixie"}.PURLDistro()))
	l, err := parseDebPURL("pkg:deb/debian/libstdc%2B%2B6@1:12.2.0-14%2Bb1?arch=amd64&distro=debian-12")
	require.NoError(t, err)
	require.Equal(t, Listed{"libstdc++6", "1:12.2.0-14+b1", "amd64"}, l)
	_, err = parseDebPURL("pkg:deb/debian/noversion")
	require.Error(t, err)
}

// Both documents are valid under their official schemas (judged by
// python3-jsonschema), list every package with its PURL, describe the
// image with its files' sha256, and are the same bytes for the same input.
func TestDocuments(t *testing.T) {
	inv, err := Read(testTree(t))
	require.NoError(t, err)
	img := testImage()
	dir := t.TempDir()
	for _, c := range []struct {
		file, schema, format string
		gen                  func(Image, *Inventory) ([]byte, error)
	}{
		{SPDXFile, "spdx-schema-2.3.json", SPDXFormat, SPDX},
		{CycloneDXFile, "bom-1.6.schema.json", CycloneDXFormat, CycloneDX},
	} {
		data, err := c.gen(img, inv)
		require.NoError(t, err)
		again, err := c.gen(img, inv)
		require.NoError(t, err)
		require.Equal(t, data, again, "%s is deterministic", c.file)
		path := filepath.Join(dir, c.file)
		require.NoError(t, os.WriteFile(path, data, 0o644))
		testutil.ValidateJSONSchema(t, filepath.Join("testdata/schemas", c.schema), path)

		got, err := Parse(data)
		require.NoError(t, err)
		require.Equal(t, c.format, got.Format)
		require.Equal(t, []Listed{{"attr", "1:2.5.1-4+b1", "amd64"}, {"libc6", "2.36-9+deb12u14", "amd64"},
			{"libstdc++6", "12.2.0-14", "amd64"}, {"tzdata", "2024a-0+deb12u1", "all"}}, got.Packages)
		require.Equal(t, img.Files, got.Files)
		require.Contains(t, string(data), "2023-11-14T22:13:20Z", "the time is the source date")
		require.Contains(t, string(data), "pkg:deb/debian/attr@1:2.5.1-4%2Bb1?arch=amd64&distro=debian-12")
	}
}

func TestSPDXContent(t *testing.T) {
	inv, err := Read(testTree(t))
	require.NoError(t, err)
	data, err := SPDX(testImage(), inv)
	require.NoError(t, err)
	var doc map[string]any
	require.NoError(t, json.Unmarshal(data, &doc))
	require.Regexp(t, regexp.MustCompile(`^https://github.com/kiln-build/kiln/spdx/web-1.2.0-[0-9a-f-]{36}$`), doc["documentNamespace"])
	pkgs := map[string]map[string]any{}
	for _, p := range doc["packages"].([]any) {
		m := p.(map[string]any)
		pkgs[m["name"].(string)] = m
	}
	require.Equal(t, "OPERATING_SYSTEM", pkgs["web"]["primaryPackagePurpose"])
	require.Equal(t, "Organization: GNU Libc Maintainers (debian-glibc@lists.debian.org)", pkgs["libc6"]["supplier"])
	require.Equal(t, "Person: Guillem Jover (guillem@debian.org)", pkgs["attr"]["supplier"])
	require.Equal(t, "built package from: glibc 2.36-9+deb12u14", pkgs["libc6"]["sourceInfo"])
	require.Equal(t, "LGPL-2.1-or-later AND LicenseRef-GPL-2-with-OpenSSL-exception", pkgs["libc6"]["licenseDeclared"])
	require.Equal(t, false, pkgs["libc6"]["filesAnalyzed"])
	rels := map[string]int{}
	for _, r := range doc["relationships"].([]any) {
		rels[r.(map[string]any)["relationshipType"].(string)]++
	}
	require.Equal(t, map[string]int{"DESCRIBES": 1, "CONTAINS": 4, "GENERATED_FROM": 2}, rels)
	var ids []string
	for _, l := range doc["hasExtractedLicensingInfos"].([]any) {
		ids = append(ids, l.(map[string]any)["licenseId"].(string))
	}
	require.Equal(t, []string{"LicenseRef-GPL-2-with-OpenSSL-exception", "LicenseRef-public-domain"}, ids, "every LicenseRef used is declared")
}

func TestCycloneDXContent(t *testing.T) {
	inv, err := Read(testTree(t))
	require.NoError(t, err)
	data, err := CycloneDX(testImage(), inv)
	require.NoError(t, err)
	var bom struct {
		Schema   string `json:"$schema"`
		Serial   string `json:"serialNumber"`
		Metadata struct {
			Component struct {
				Type, Name, Version string
			}
		}
		Components []struct {
			Name     string
			Licenses []map[string]any
			Supplier struct{ Name string }
		}
	}
	require.NoError(t, json.Unmarshal(data, &bom))
	require.Equal(t, "http://cyclonedx.org/schema/bom-1.6.schema.json", bom.Schema)
	require.Regexp(t, `^urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`, bom.Serial)
	require.Equal(t, "operating-system", bom.Metadata.Component.Type)
	lic := map[string]any{}
	for _, c := range bom.Components {
		if len(c.Licenses) > 0 {
			lic[c.Name] = c.Licenses[0]
		}
	}
	require.Equal(t, map[string]any{
		"attr":   map[string]any{"license": map[string]any{"id": "GPL-2.0-or-later"}},
		"libc6":  map[string]any{"expression": "LGPL-2.1-or-later AND LicenseRef-GPL-2-with-OpenSSL-exception"},
		"tzdata": map[string]any{"expression": "LicenseRef-public-domain"},
	}, lic)
}
