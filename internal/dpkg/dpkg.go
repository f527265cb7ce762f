// Package dpkg reads the package database of a Debian root tree: the
// installed packages from /var/lib/dpkg/status and the checksums dpkg
// recorded for the files they ship. The manifest's package list, the SBOMs
// and the secret lint all read it through this package.
//
// It reads through internal/fsroot, so a hostile tree cannot redirect it
// outside itself. It does not run dpkg and does not write anything.
package dpkg

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/kiln-build/kiln/internal/fsroot"
)

// StatusFile is dpkg's database of packages, inside a tree.
const StatusFile = "/var/lib/dpkg/status"

// InfoDir holds each package's file lists and checksums, inside a tree.
const InfoDir = "/var/lib/dpkg/info"

// Package is one installed package, as dpkg's status database records it.
type Package struct {
	Name    string
	Version string // with its epoch, as dpkg writes it: "1:2.4.47-2+b1"
	Arch    string
	// Source and SourceVersion name the source package it was built from
	// (the binary's own name and version when the status has no Source).
	Source        string
	SourceVersion string
	Maintainer    string // "Name <email>"
	Homepage      string
	// Conffiles maps each configuration file (absolute path) to the md5
	// dpkg recorded when it installed it.
	Conffiles map[string]string
}

// Installed returns the packages whose status is "installed", sorted by
// name, then architecture.
func Installed(tree string) ([]Package, error) {
	data, err := fsroot.ReadFile(tree, StatusFile)
	if err != nil {
		return nil, fmt.Errorf("reading the package database: %w", err)
	}
	return parseStatus(data), nil
}

func parseStatus(data []byte) []Package {
	var out []Package
	var cur Package
	var installed bool
	var field string // the field a continuation line belongs to
	flush := func() {
		if cur.Name != "" && installed {
			if cur.Source == "" {
				cur.Source = cur.Name
			}
			if cur.SourceVersion == "" {
				cur.SourceVersion = cur.Version
			}
			out = append(out, cur)
		}
		cur, installed, field = Package{}, false, ""
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.TrimSpace(line) == "" {
			flush()
			continue
		}
		if line[0] == ' ' || line[0] == '\t' {
			if field == "Conffiles" {
				if f := strings.Fields(line); len(f) >= 2 {
					if cur.Conffiles == nil {
						cur.Conffiles = map[string]string{}
					}
					cur.Conffiles[f[0]] = f[1]
				}
			}
			continue
		}
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		field, v = k, strings.TrimSpace(v)
		switch k {
		case "Package":
			cur.Name = v
		case "Version":
			cur.Version = v
		case "Architecture":
			cur.Arch = v
		case "Maintainer":
			cur.Maintainer = v
		case "Homepage":
			cur.Homepage = v
		case "Source":
			// "glibc" or "glibc (2.36-9)"
			name, ver, hasVer := strings.Cut(v, " (")
			cur.Source = strings.TrimSpace(name)
			if hasVer {
				cur.SourceVersion = strings.TrimSuffix(strings.TrimSpace(ver), ")")
			}
		case "Status":
			f := strings.Fields(v)
			installed = len(f) == 3 && f[2] == "installed"
		}
	}
	flush()
	sort.Slice(out, func(i, j int) bool {
		if out[i].Name != out[j].Name {
			return out[i].Name < out[j].Name
		}
		return out[i].Arch < out[j].Arch
	})
	return out
}

// FileSums maps every file the installed packages ship (absolute paths
// inside the tree) to the md5 dpkg recorded for it: the *.md5sums lists
// and the conffiles. A file whose md5 matches is exactly as its package
// shipped it.
func FileSums(tree string) (map[string]string, error) {
	pkgs, err := Installed(tree)
	if err != nil {
		return nil, err
	}
	sums := map[string]string{}
	for _, p := range pkgs {
		for path, md5 := range p.Conffiles {
			sums[path] = md5
		}
	}
	dir, err := fsroot.Resolve(tree, InfoDir)
	if err != nil {
		return nil, err
	}
	lists, _ := filepath.Glob(filepath.Join(dir, "*.md5sums"))
	sort.Strings(lists)
	for _, l := range lists {
		data, err := fsroot.ReadFile(tree, InfoDir+"/"+filepath.Base(l))
		if err != nil {
			if os.IsNotExist(err) {
				continue
			}
			return nil, err
		}
		for _, line := range strings.Split(string(data), "\n") {
			md5, path, ok := strings.Cut(line, "  ")
			if ok && len(md5) == 32 && path != "" {
				sums["/"+strings.TrimPrefix(path, "/")] = md5
			}
		}
	}
	return sums, nil
}
