package catalog

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/kiln-build/kiln/internal/atomicfile"
	"github.com/kiln-build/kiln/internal/flock"
	"github.com/kiln-build/kiln/internal/semver"
)

// StateFile is the name of a build's mutable catalog state, beside its
// immutable manifest.json.
const StateFile = "catalog.json"

// State is what the catalog says about a build after it was published:
// who may use it and whether it is deprecated. The zero State is a private
// build that is not deprecated.
type State struct {
	Visibility   string     `json:"visibility,omitempty"` // private (default), shared or public
	SharedWith   []string   `json:"shared_with,omitempty"`
	DeprecatedAt *time.Time `json:"deprecated_at,omitempty"`
	History      []Change   `json:"history,omitempty"`
}

// Change is one recorded change of a build's state.
type Change struct {
	At     time.Time `json:"at"`
	Action string    `json:"action"` // e.g. "deprecate", "share"
	Detail string    `json:"detail,omitempty"`
}

// Deprecated reports whether the build is deprecated at now.
func (s State) Deprecated(now time.Time) bool {
	return s.DeprecatedAt != nil && !now.Before(*s.DeprecatedAt)
}

// Entry is one published build in the catalog.
type Entry struct {
	Name    string
	Version semver.Version
	Build   int
	Dir     string
	State   State
}

// ID is name/version/build, the artifact's identity.
func (e Entry) ID() string { return fmt.Sprintf("%s/%s/%d", e.Name, e.Version, e.Build) }

// ReadState reads a build directory's catalog state; a build without one
// has the zero State.
func ReadState(dir string) (State, error) {
	var s State
	data, err := os.ReadFile(filepath.Join(dir, StateFile))
	if errors.Is(err, os.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return s, err
	}
	if err := json.Unmarshal(data, &s); err != nil {
		return s, fmt.Errorf("%s: %w", filepath.Join(dir, StateFile), err)
	}
	return s, nil
}

// UpdateState changes a published build's state under its version's lock
// (the lock Publish takes) and replaces the state file atomically, so a
// reader sees the old state or the new one, never half of either.
func UpdateState(e Entry, change func(*State) error) error {
	unlock, err := flock.Lock(filepath.Join(filepath.Dir(e.Dir), ".lock"))
	if err != nil {
		return err
	}
	defer unlock()
	s, err := ReadState(e.Dir)
	if err != nil {
		return err
	}
	if err := change(&s); err != nil {
		return err
	}
	return writeState(e.Dir, s)
}

// writeState replaces dir's state file atomically.
func writeState(dir string, s State) error {
	data, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.Write(filepath.Join(dir, StateFile), append(data, '\n'), 0o644)
}

var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,62}$`)

// List returns the published builds under root, of one image when name is
// not "", ordered by name, version and build. Directories that are not
// builds (staging, failed logs, stray files) are ignored.
func List(root, name string) ([]Entry, error) {
	names := []string{name}
	if name == "" {
		des, err := os.ReadDir(root)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, err
		}
		names = names[:0]
		for _, d := range des {
			if d.IsDir() && nameRE.MatchString(d.Name()) {
				names = append(names, d.Name())
			}
		}
	}
	var out []Entry
	for _, n := range names {
		vdirs, err := os.ReadDir(filepath.Join(root, n))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		for _, vd := range vdirs {
			v, err := semver.Parse(vd.Name())
			if err != nil || !vd.IsDir() {
				continue
			}
			vdir := filepath.Join(root, n, vd.Name())
			builds, err := Builds(vdir)
			if err != nil {
				return nil, err
			}
			for _, b := range builds {
				dir := filepath.Join(vdir, strconv.Itoa(b))
				st, err := ReadState(dir)
				if err != nil {
					return nil, err
				}
				out = append(out, Entry{Name: n, Version: v, Build: b, Dir: dir, State: st})
			}
		}
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Name != b.Name {
			return a.Name < b.Name
		}
		if c := a.Version.Compare(b.Version); c != 0 {
			return c < 0
		}
		return a.Build < b.Build
	})
	return out, nil
}

// Ref is a reference to catalog builds: NAME, NAME@SELECTOR or
// NAME@SELECTOR/BUILD, where SELECTOR is a version or an x-wildcard
// selector ("1.x.x"). A missing selector means x.x.x; Build 0 means the
// newest eligible build.
type Ref struct {
	Name     string
	Selector semver.Selector
	Build    int
}

// ParseRef parses a catalog reference.
func ParseRef(s string) (Ref, error) {
	name, rest, hasAt := strings.Cut(s, "@")
	if !nameRE.MatchString(name) {
		return Ref{}, fmt.Errorf("%q does not start with an image name: write NAME, NAME@VERSION or NAME@VERSION/BUILD, such as web@1.x.x or web@1.2.0/3", s)
	}
	r := Ref{Name: name}
	sel := "x.x.x"
	if hasAt {
		v, b, hasBuild := strings.Cut(rest, "/")
		sel = v
		if hasBuild {
			n, err := strconv.Atoi(b)
			if err != nil || n < 1 || strconv.Itoa(n) != b {
				return Ref{}, fmt.Errorf("%q: the build %q is not a build number (1, 2, ...)", s, b)
			}
			r.Build = n
		}
	}
	var err error
	if r.Selector, err = semver.ParseSelector(sel); err != nil {
		return Ref{}, err
	}
	if r.Build != 0 && !r.Selector.Exact() {
		return Ref{}, fmt.Errorf("%q: a build number needs an exact version, such as %s@1.2.0/%d", s, name, r.Build)
	}
	return r, nil
}

func (r Ref) String() string {
	s := r.Name + "@" + r.Selector.String()
	if r.Build > 0 {
		s += "/" + strconv.Itoa(r.Build)
	}
	return s
}

// Select picks the build r names: the newest build of the newest version
// that r's selector matches. Deprecated builds (at now) are skipped unless
// includeDeprecated is set or r names the build explicitly; when every build
// of the newest matching version is deprecated, an older version is picked.
func Select(root string, r Ref, includeDeprecated bool, now time.Time) (Entry, error) {
	all, err := List(root, r.Name)
	if err != nil {
		return Entry{}, err
	}
	var best *Entry
	skipped := 0
	for i := range all {
		e := &all[i]
		if !r.Selector.Matches(e.Version) || (r.Build != 0 && e.Build != r.Build) {
			continue
		}
		if r.Build == 0 && !includeDeprecated && e.State.Deprecated(now) {
			skipped++
			continue
		}
		best = e // List is ordered, so the last match is the newest
	}
	if best == nil {
		return Entry{}, &NoMatchError{Ref: r, Root: root, SkippedDeprecated: skipped, Hint: "pass --include-deprecated"}
	}
	return *best, nil
}

// NoMatchError is Select's error when no build matches a ref. Hint says how
// to let deprecated builds be picked, in the caller's words (a flag for the
// CLI, an attribute for a recipe).
type NoMatchError struct {
	Ref               Ref
	Root              string
	SkippedDeprecated int
	Hint              string
}

func (e *NoMatchError) Error() string {
	msg := fmt.Sprintf("no build of %s in the catalog %s matches %s", e.Ref.Name, e.Root, e.Ref)
	if e.SkippedDeprecated > 0 {
		msg += fmt.Sprintf(" (%d deprecated build(s) were skipped; %s to consider them)", e.SkippedDeprecated, e.Hint)
	}
	return msg
}
