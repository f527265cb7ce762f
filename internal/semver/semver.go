// Package semver parses MAJOR.MINOR.PATCH versions and the x-wildcard
// selectors that EC2 Image Builder uses for components and images: "1.2.3"
// picks exactly that version, "1.2.x" the newest 1.2.*, "1.x.x" the newest
// 1.*.* and "x.x.x" the newest of all. Once a part is x, every part to its
// right must be x too ("1.x.3" is an error).
package semver

import (
	"fmt"
	"strconv"
	"strings"
)

// Version is a MAJOR.MINOR.PATCH version.
type Version struct{ Major, Minor, Patch int }

func (v Version) String() string { return fmt.Sprintf("%d.%d.%d", v.Major, v.Minor, v.Patch) }

// Compare returns -1, 0 or 1 as v is older than, equal to or newer than w.
func (v Version) Compare(w Version) int {
	for _, d := range [3]int{v.Major - w.Major, v.Minor - w.Minor, v.Patch - w.Patch} {
		switch {
		case d < 0:
			return -1
		case d > 0:
			return 1
		}
	}
	return 0
}

// Parse parses "MAJOR.MINOR.PATCH", three decimal numbers without leading
// zeros, signs or suffixes.
func Parse(s string) (Version, error) {
	parts := strings.Split(s, ".")
	if len(parts) != 3 {
		return Version{}, fmt.Errorf("%q is not a version: write MAJOR.MINOR.PATCH, such as 1.2.0", s)
	}
	var n [3]int
	for i, p := range parts {
		v, err := number(p)
		if err != nil {
			return Version{}, fmt.Errorf("%q is not a version: %v; write MAJOR.MINOR.PATCH, such as 1.2.0", s, err)
		}
		n[i] = v
	}
	return Version{n[0], n[1], n[2]}, nil
}

func number(p string) (int, error) {
	if p == "" {
		return 0, fmt.Errorf("a part is empty")
	}
	if len(p) > 1 && p[0] == '0' {
		return 0, fmt.Errorf("%q has a leading zero", p)
	}
	for _, c := range p {
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("%q is not a number", p)
		}
	}
	if len(p) > 9 {
		return 0, fmt.Errorf("%q is too large", p)
	}
	return strconv.Atoi(p)
}

// Selector is a parsed x-wildcard selector. Fixed says how many leading
// parts are fixed (0 to 3); the rest are x.
type Selector struct {
	Fixed int
	v     Version
}

// ParseSelector parses "1.2.3", "1.2.x", "1.x.x" or "x.x.x" (X is accepted
// for x).
func ParseSelector(s string) (Selector, error) {
	parts := strings.Split(s, ".")
	if len(parts) != 3 {
		return Selector{}, fmt.Errorf("%q is not a version selector: write MAJOR.MINOR.PATCH with x for any, such as 1.x.x or 1.2.x", s)
	}
	var sel Selector
	var n [3]int
	for i, p := range parts {
		if p == "x" || p == "X" {
			continue
		}
		if sel.Fixed != i {
			return Selector{}, fmt.Errorf("%q is not a version selector: once a part is x, every part to its right must be x too, such as %s", s, strings.Join(append(parts[:sel.Fixed:sel.Fixed], xs(3-sel.Fixed)...), "."))
		}
		v, err := number(p)
		if err != nil {
			return Selector{}, fmt.Errorf("%q is not a version selector: %v", s, err)
		}
		n[i] = v
		sel.Fixed++
	}
	sel.v = Version{n[0], n[1], n[2]}
	return sel, nil
}

func xs(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = "x"
	}
	return out
}

// Matches reports whether v is selected by s.
func (s Selector) Matches(v Version) bool {
	got := [3]int{v.Major, v.Minor, v.Patch}
	want := [3]int{s.v.Major, s.v.Minor, s.v.Patch}
	for i := 0; i < s.Fixed; i++ {
		if got[i] != want[i] {
			return false
		}
	}
	return true
}

// Exact reports whether s names one version (no x).
func (s Selector) Exact() bool { return s.Fixed == 3 }

func (s Selector) String() string {
	p := []string{strconv.Itoa(s.v.Major), strconv.Itoa(s.v.Minor), strconv.Itoa(s.v.Patch)}
	return strings.Join(append(p[:s.Fixed:s.Fixed], xs(3-s.Fixed)...), ".")
}

// Newest returns the index of the newest version in vs that s matches, or
// -1 when none does.
func (s Selector) Newest(vs []Version) int {
	best := -1
	for i, v := range vs {
		if s.Matches(v) && (best < 0 || v.Compare(vs[best]) > 0) {
			best = i
		}
	}
	return best
}
