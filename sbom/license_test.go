package sbom

import (
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// The embedded list is exactly the vendored schema's.
func TestSPDXIDsMatchTheSchema(t *testing.T) {
	data, err := os.ReadFile("testdata/schemas/spdx.schema.json")
	require.NoError(t, err)
	var schema struct {
		Enum []string `json:"enum"`
	}
	require.NoError(t, json.Unmarshal(data, &schema))
	require.Equal(t, schema.Enum, strings.Fields(spdxIDs))
}

func TestConvertExpression(t *testing.T) {
	for in, want := range map[string]string{
		"GPL-2+":             "GPL-2.0-or-later",
		"GPL-2":              "GPL-2.0-only",
		"GPL-2.0+":           "GPL-2.0-or-later",
		"LGPL-2.1+":          "LGPL-2.1-or-later",
		"LGPL-3+ or GPL-2+":  "LGPL-3.0-or-later OR GPL-2.0-or-later",
		"GPL-1+ or Artistic": "GPL-1.0-or-later OR Artistic-1.0-Perl",
		"Expat":              "MIT",
		"expat":              "MIT",
		"BSD-3-clause":       "BSD-3-Clause",
		"BSD-3-Clause":       "BSD-3-Clause",
		"zlib":               "Zlib",
		"ZLIB":               "Zlib",
		"0BSD":               "0BSD",
		"Apache-2":           "Apache-2.0",
		"GFDL-NIV-1.3+":      "GFDL-1.3-no-invariants-or-later",
		"public-domain":      "LicenseRef-public-domain",
		"Public-Domain":      "LicenseRef-Public-Domain",
		"GPL-2 with Linux-syscall-note exception":     "GPL-2.0-only WITH Linux-syscall-note",
		"GPL-3+ with Bison exception":                 "GPL-3.0-or-later WITH Bison-exception-2.2",
		"GPL-2+ with OpenSSL exception":               "LicenseRef-GPL-2-with-OpenSSL-exception",
		"GPL-2+ or AFL-2.1, and Expat and Tcl-BSDish": "(GPL-2.0-or-later OR AFL-2.1) AND (MIT AND LicenseRef-Tcl-BSDish)",
		"BSD-3-clause or GPL":                         "BSD-3-Clause OR GPL-1.0-or-later",
		"LGPL":                                        "LGPL-2.0-or-later",
		"MIT/X11":                                     "MIT",
		"GPL-7+":                                      "LicenseRef-GPL-7",
	} {
		refs := map[string]string{}
		require.Equal(t, want, convertExpression(in, refs), in)
		for ref, name := range refs {
			require.Regexp(t, `^LicenseRef-[A-Za-z0-9.-]+$`, ref)
			require.NotEmpty(t, name)
		}
	}
}

// Every identifier the Debian table produces is a current SPDX identifier.
func TestDebianNamesAreSPDX(t *testing.T) {
	for name, expr := range debianNames {
		for _, w := range strings.Fields(expr) {
			if w == "OR" || w == "AND" {
				continue
			}
			require.Contains(t, knownIDs, strings.ToLower(w), "%s -> %s", name, w)
		}
	}
	for name, id := range exceptions {
		require.Contains(t, knownIDs, strings.ToLower(id), name)
	}
}

const dep5 = `Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: attr
Source: https://savannah.nongnu.org/projects/attr/

Files: *
Copyright: 2000-2002, 2007 Silicon Graphics, Inc.
License: GPL-2+

Files: libattr/*
Copyright: 2000-2002, 2007 Silicon Graphics, Inc.
License: LGPL-2.1+
  
Files: debian/*
Copyright: 2009 Someone
License: GPL-2+

License: GPL-2+
 This program is free software; you can redistribute it
 .
 On Debian systems, see /usr/share/common-licenses/GPL-2.

License: public-domain
 Nobody owns this.
`

func TestCopyrightLicense(t *testing.T) {
	refs := map[string]string{}
	require.Equal(t, "GPL-2.0-or-later AND LGPL-2.1-or-later", copyrightLicense([]byte(dep5), refs))
	require.Empty(t, refs, "a stand-alone License paragraph is only the text of a name")
	require.Equal(t, NoAssertion, copyrightLicense([]byte("This package was debianized by ...\n\nLicense: GPL\n"), refs))
	require.Equal(t, NoAssertion, copyrightLicense(nil, refs))
	mixed := "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\nLicense: GPL-2+ or Artistic\n\nFiles: x\nLicense: Expat\n"
	require.Equal(t, "(GPL-2.0-or-later OR Artistic-1.0-Perl) AND MIT", copyrightLicense([]byte(mixed), refs))
}
