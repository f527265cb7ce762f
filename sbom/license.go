package sbom

import (
	"regexp"
	"sort"
	"strings"
)

// NoAssertion is SPDX's word for "not known".
const NoAssertion = "NOASSERTION"

// knownIDs maps each SPDX identifier, lower-cased, to its spelling.
var knownIDs = func() map[string]string {
	m := map[string]string{}
	for _, id := range strings.Fields(spdxIDs) {
		m[strings.ToLower(id)] = id
	}
	return m
}()

// debianNames maps the short names of Debian's machine-readable copyright
// format (and common variants), lower-cased, to SPDX expressions. Names
// that are SPDX identifiers already (ISC, Zlib, CC0-1.0, ...) need no entry.
var debianNames = map[string]string{
	"expat": "MIT", "mit/x11": "MIT", "mit": "MIT",
	"apache-2": "Apache-2.0", "apache-2.0": "Apache-2.0",
	"artistic": "Artistic-1.0-Perl", "artistic-1": "Artistic-1.0-Perl", "artistic-2": "Artistic-2.0", "artistic-2.0": "Artistic-2.0",
	"perl":         "Artistic-1.0-Perl OR GPL-1.0-or-later",
	"bsd-2-clause": "BSD-2-Clause", "bsd-3-clause": "BSD-3-Clause", "bsd-4-clause": "BSD-4-Clause",
	"psf-2": "PSF-2.0", "python-2": "Python-2.0",
	"mpl-1.1": "MPL-1.1", "mpl-2": "MPL-2.0", "mpl-2.0": "MPL-2.0",
	"cddl-1": "CDDL-1.0", "epl-1": "EPL-1.0", "epl-2": "EPL-2.0",
	"zope-2.1": "ZPL-2.1", "ofl-1.1": "OFL-1.1",
	// Unversioned: any version, so the first one "or later".
	"gpl": "GPL-1.0-or-later", "lgpl": "LGPL-2.0-or-later", "gfdl": "GFDL-1.1-or-later",
}

// exceptions maps the exception names Debian writes in "LICENSE with NAME
// exception" to SPDX exception identifiers.
var exceptions = map[string]string{
	"linux-syscall-note": "Linux-syscall-note", "bison": "Bison-exception-2.2", "texinfo": "Texinfo-exception",
	"bison-2.2": "Bison-exception-2.2", "autoconf": "Autoconf-exception-3.0", "gcc": "GCC-exception-3.1", "gcc-3.1": "GCC-exception-3.1",
	"classpath": "Classpath-exception-2.0", "font": "Font-exception-2.0", "libtool": "Libtool-exception",
}

// gnuRE is a GNU license with a Debian version: GPL-2, GPL-2+, LGPL-2.1+,
// GFDL-NIV-1.3+, GPL-2.0+ ...
var gnuRE = regexp.MustCompile(`^(a?gpl|lgpl|g?fdl|gfdl-niv)-([0-9](?:\.[0-9])?)(\+)?$`)

// licenseID converts one Debian license name (no operators) to an SPDX
// identifier, or "" when there is none.
func licenseID(name string) string {
	l := strings.ToLower(strings.TrimSpace(name))
	if id, ok := debianNames[l]; ok {
		return id
	}
	if m := gnuRE.FindStringSubmatch(l); m != nil {
		family, ver, later := strings.ToUpper(m[1]), m[2], m[3] != ""
		if family == "FDL" {
			family = "GFDL"
		}
		if !strings.Contains(ver, ".") {
			ver += ".0"
		}
		suffix := "-only"
		if later {
			suffix = "-or-later"
		}
		id := family + "-" + ver + suffix
		if family == "GFDL-NIV" {
			id = "GFDL-" + ver + "-no-invariants" + suffix
		}
		if canon, ok := knownIDs[strings.ToLower(id)]; ok {
			return canon
		}
		return ""
	}
	if id, ok := knownIDs[l]; ok && !strings.HasSuffix(id, "+") {
		return id
	}
	return ""
}

// licenseRefRE is what SPDX allows after LicenseRef-.
var licenseRefRE = regexp.MustCompile(`[^A-Za-z0-9.]+`)

// LicenseRef is the SPDX LicenseRef- identifier Kiln gives a Debian
// license name that has no SPDX identifier.
func LicenseRef(name string) string {
	s := strings.Trim(licenseRefRE.ReplaceAllString(strings.TrimSpace(name), "-"), "-")
	if s == "" {
		s = "unnamed"
	}
	return "LicenseRef-" + s
}

// convertTerm converts one license of an expression, "GPL-2+" or "GPL-2+
// with OpenSSL exception", to SPDX; refs collects the LicenseRef-s used,
// with the Debian name each stands for.
func convertTerm(term string, refs map[string]string) string {
	words := strings.Fields(term)
	for i, w := range words {
		if strings.EqualFold(w, "with") && i > 0 && i < len(words)-1 {
			lic := licenseID(strings.Join(words[:i], " "))
			exc := strings.ToLower(strings.TrimSuffix(strings.TrimSuffix(strings.Join(words[i+1:], " "), " exception"), " Exception"))
			if e, ok := exceptions[exc]; ok && lic != "" && !strings.Contains(lic, " ") {
				return lic + " WITH " + e
			}
			break
		}
	}
	if id := licenseID(term); id != "" {
		return id
	}
	ref := LicenseRef(term)
	refs[ref] = strings.Join(words, " ")
	return ref
}

// convertExpression converts a Debian License: value ("GPL-2+ or
// Artistic", "GPL-2+ or AFL-2.1, and Expat") to an SPDX expression.
// A comma ends a group: "A or B, and C" is "(A OR B) AND C".
func convertExpression(v string, refs map[string]string) string {
	var groups []string
	for i, g := range strings.Split(v, ",") {
		words := strings.Fields(g)
		op := ""
		if i > 0 && len(words) > 0 && (strings.EqualFold(words[0], "and") || strings.EqualFold(words[0], "or")) {
			op, words = strings.ToUpper(words[0]), words[1:]
		}
		var parts []string
		var term []string
		flush := func() {
			if len(term) > 0 {
				parts = append(parts, convertTerm(strings.Join(term, " "), refs))
				term = nil
			}
		}
		for _, w := range words {
			if strings.EqualFold(w, "and") || strings.EqualFold(w, "or") {
				flush()
				parts = append(parts, strings.ToUpper(w))
				continue
			}
			term = append(term, w)
		}
		flush()
		if len(parts) == 0 {
			continue
		}
		expr := strings.Join(parts, " ")
		if len(parts) > 1 {
			expr = "(" + expr + ")"
		}
		if len(groups) > 0 {
			if op == "" {
				op = "AND"
			}
			groups = append(groups, op)
		}
		groups = append(groups, expr)
	}
	if len(groups) == 1 {
		return strings.TrimSuffix(strings.TrimPrefix(groups[0], "("), ")")
	}
	return strings.Join(groups, " ")
}

// copyrightLicense reads a machine-readable debian/copyright file (DEP-5)
// and returns the SPDX expression of every license its header and Files
// paragraphs name, joined with AND, or NoAssertion when the file is not
// machine-readable or names none.
func copyrightLicense(data []byte, refs map[string]string) string {
	paras := paragraphRE.Split(strings.ReplaceAll(string(data), "\r\n", "\n"), -1)
	if len(paras) == 0 || !isDEP5Header(paras[0]) {
		return NoAssertion
	}
	seen := map[string]bool{}
	var exprs []string
	for i, p := range paras {
		fields := fieldsOf(p)
		if _, isFiles := fields["files"]; i > 0 && !isFiles {
			continue // a stand-alone License paragraph: the text of a name used elsewhere
		}
		lic := strings.TrimSpace(fields["license"])
		if lic == "" {
			continue
		}
		e := convertExpression(lic, refs)
		if e == "" || seen[e] {
			continue
		}
		seen[e] = true
		exprs = append(exprs, e)
	}
	if len(exprs) == 0 {
		return NoAssertion
	}
	sort.Strings(exprs)
	for i, e := range exprs {
		if len(exprs) > 1 && strings.Contains(e, " OR ") && !strings.HasPrefix(e, "(") {
			exprs[i] = "(" + e + ")"
		}
	}
	return strings.Join(exprs, " AND ")
}

// paragraphRE separates deb822 paragraphs: an empty line, or one of only
// spaces and tabs, as Debian policy lets parsers accept.
var paragraphRE = regexp.MustCompile(`\n[ \t]*\n`)

func isDEP5Header(p string) bool {
	f := fieldsOf(p)
	return strings.Contains(f["format"], "copyright-format") || strings.Contains(f["format-specification"], "copyright-format")
}

// fieldsOf returns the first line of each field of a deb822 paragraph,
// keyed by lower-cased name.
func fieldsOf(p string) map[string]string {
	out := map[string]string{}
	for _, line := range strings.Split(p, "\n") {
		if line == "" || line[0] == ' ' || line[0] == '\t' || line[0] == '#' {
			continue
		}
		if k, v, ok := strings.Cut(line, ":"); ok {
			out[strings.ToLower(strings.TrimSpace(k))] = strings.TrimSpace(v)
		}
	}
	return out
}
