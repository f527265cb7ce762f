package catalog

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/kiln-build/kiln/internal/atomicfile"
	"github.com/kiln-build/kiln/internal/flock"
	"github.com/kiln-build/kiln/internal/semver"
	"github.com/kiln-build/kiln/manifest"
)

// StateFile is the name of a build's mutable catalog state, beside its
// immutable manifest.json.
const StateFile = "catalog.json"

// StateSchemaVersion is the version of catalog.json this Kiln writes and
// reads; a file without one is version 1. A newer version is refused (the
// build is listed as damaged), never rewritten.
const StateSchemaVersion = 1

// ErrStateSchema is wrapped by ReadState for a catalog.json written by a
// newer Kiln.
var ErrStateSchema = errors.New("unknown catalog.json schema_version")

// State is what the catalog says about a build after it was published:
// who may use it and whether it is deprecated. The zero State is a private
// build that is not deprecated.
type State struct {
	SchemaVersion int        `json:"schema_version,omitempty"`
	Visibility    string     `json:"visibility,omitempty"` // private (default), shared or public
	SharedWith    []string   `json:"shared_with,omitempty"`
	DeprecatedAt  *time.Time `json:"deprecated_at,omitempty"`
	History       []Change   `json:"history,omitempty"`
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
// has the zero State. A state file that is not a regular file (a symbolic
// link), cannot be parsed, or has an unknown schema version is an error.
func ReadState(dir string) (State, error) {
	var s State
	path := filepath.Join(dir, StateFile)
	data, err := readRegular(path)
	if errors.Is(err, os.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return s, err
	}
	if err := json.Unmarshal(data, &s); err != nil {
		return s, fmt.Errorf("%s: %w", path, err)
	}
	if s.SchemaVersion > StateSchemaVersion {
		return s, fmt.Errorf("%s: %w %d (this Kiln reads %d; a newer Kiln wrote it)", path, ErrStateSchema, s.SchemaVersion, StateSchemaVersion)
	}
	return s, nil
}

// readRegular reads a file that must be a regular file: a symbolic link
// (which could lead out of the catalog) is refused, not followed.
func readRegular(path string) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if errors.Is(err, syscall.ELOOP) {
		return nil, fmt.Errorf("%s: a symbolic link, not followed; a build holds only regular files", path)
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file (%s)", path, fi.Mode().Type())
	}
	return io.ReadAll(io.LimitReader(f, maxMetadata+1))
}

// maxMetadata bounds what is read of a manifest.json or catalog.json.
const maxMetadata = 64 << 20

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
		return fmt.Errorf("%s: %w; kiln images check --repair recreates it from manifest.json", e.ID(), err)
	}
	if err := change(&s); err != nil {
		return err
	}
	if err := writeState(e.Dir, s); err != nil {
		return err
	}
	return applyModes(rootOf(e), e.Dir, s.EffectiveVisibility())
}

// rootOf is the catalog root of a build directory <root>/<name>/<version>/<build>.
func rootOf(e Entry) string { return filepath.Dir(filepath.Dir(filepath.Dir(e.Dir))) }

// writeState replaces dir's state file atomically.
func writeState(dir string, s State) error {
	s.SchemaVersion = StateSchemaVersion
	data, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.Write(filepath.Join(dir, StateFile), append(data, '\n'), 0o644)
}

var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,62}$`)

// Damaged is a build directory the catalog cannot read: its manifest.json
// or catalog.json is missing, unreadable, truncated, a symbolic link, of an
// unknown schema version, or names another build. It is listed as damaged,
// never used as a base, copied, pruned or changed; it can be removed, and
// kiln images check --repair recreates what it can.
type Damaged struct {
	Name    string
	Version semver.Version
	Build   int
	Dir     string
	Reason  string
}

// ID is name/version/build.
func (d Damaged) ID() string { return fmt.Sprintf("%s/%s/%d", d.Name, d.Version, d.Build) }

// Entry is the damaged build as an Entry (for Remove), with the zero State.
func (d Damaged) Entry() Entry {
	return Entry{Name: d.Name, Version: d.Version, Build: d.Build, Dir: d.Dir}
}

// List returns the readable published builds under root, of one image when
// name is not "", ordered by name, version and build. Directories that are
// not builds (staging, failed logs, stray files, symbolic links) are
// ignored, and so are damaged builds (see Scan).
func List(root, name string) ([]Entry, error) {
	es, _, err := Scan(root, name)
	return es, err
}

// Scan is List that also returns the damaged builds, with what is wrong
// with each. It never follows a symbolic link: a link where an image,
// version or build directory belongs is not part of the catalog.
func Scan(root, name string) ([]Entry, []Damaged, error) {
	names := []string{name}
	if name == "" {
		des, err := os.ReadDir(root)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, nil, err
		}
		names = names[:0]
		for _, d := range des {
			if d.IsDir() && nameRE.MatchString(d.Name()) {
				names = append(names, d.Name())
			}
		}
	}
	var out []Entry
	var damaged []Damaged
	for _, n := range names {
		if fi, err := os.Lstat(filepath.Join(root, n)); err != nil || !fi.IsDir() {
			continue // missing, or a link leading out of the catalog
		}
		vdirs, err := os.ReadDir(filepath.Join(root, n))
		if err != nil {
			return nil, nil, err
		}
		for _, vd := range vdirs {
			v, err := semver.Parse(vd.Name())
			if err != nil || !vd.IsDir() {
				continue
			}
			vdir := filepath.Join(root, n, vd.Name())
			builds, err := Builds(vdir)
			if err != nil {
				return nil, nil, err
			}
			for _, b := range builds {
				dir := filepath.Join(vdir, strconv.Itoa(b))
				st, reason := readBuild(dir, n, v, b)
				if reason != "" {
					damaged = append(damaged, Damaged{Name: n, Version: v, Build: b, Dir: dir, Reason: reason})
					continue
				}
				out = append(out, Entry{Name: n, Version: v, Build: b, Dir: dir, State: st})
			}
		}
	}
	sort.Slice(out, func(i, j int) bool {
		return less(out[i].Name, out[i].Version, out[i].Build, out[j].Name, out[j].Version, out[j].Build)
	})
	sort.Slice(damaged, func(i, j int) bool {
		return less(damaged[i].Name, damaged[i].Version, damaged[i].Build, damaged[j].Name, damaged[j].Version, damaged[j].Build)
	})
	return out, damaged, nil
}

func less(an string, av semver.Version, ab int, bn string, bv semver.Version, bb int) bool {
	if an != bn {
		return an < bn
	}
	if c := av.Compare(bv); c != 0 {
		return c < 0
	}
	return ab < bb
}

// readBuild reads a build's state and checks its manifest: it must be
// readable, of this Kiln's schema version, and name this build. It returns
// what is wrong ("" when nothing).
func readBuild(dir, name string, v semver.Version, build int) (State, string) {
	data, err := readRegular(filepath.Join(dir, manifest.FileName))
	if errors.Is(err, os.ErrNotExist) {
		return State{}, "manifest.json is missing"
	}
	if err != nil {
		return State{}, "manifest.json: " + trimPath(err, dir)
	}
	m, err := manifest.Decode(data)
	if err != nil {
		return State{}, "manifest.json: " + err.Error()
	}
	if m.Name != name || m.Version != v.String() || m.Build != build {
		return State{}, fmt.Sprintf("manifest.json names %s/%s/%d, not this build", m.Name, m.Version, m.Build)
	}
	st, err := ReadState(dir)
	if err != nil {
		return State{}, "catalog.json: " + trimPath(err, dir)
	}
	return st, ""
}

// trimPath drops the build directory from an error's text: the listing
// names the build already.
func trimPath(err error, dir string) string {
	s := strings.ReplaceAll(err.Error(), filepath.Join(dir, StateFile)+": ", "")
	s = strings.ReplaceAll(s, filepath.Join(dir, manifest.FileName)+": ", "")
	return strings.ReplaceAll(s, dir+string(filepath.Separator), "")
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
//
// Damaged builds are never picked: a ref that names one explicitly gets an
// error that says what is wrong with it, and a wildcard that matches some
// says how many it skipped.
func Select(root string, r Ref, includeDeprecated bool, now time.Time) (Entry, error) {
	all, damaged, err := Scan(root, r.Name)
	if err != nil {
		return Entry{}, err
	}
	var skippedDamaged []string
	for _, d := range damaged {
		if !r.Selector.Matches(d.Version) || (r.Build != 0 && d.Build != r.Build) {
			continue
		}
		if r.Build != 0 {
			return Entry{}, fmt.Errorf("%s is damaged: %s; kiln images check says more (and --repair recreates what it can)", d.ID(), d.Reason)
		}
		skippedDamaged = append(skippedDamaged, d.ID())
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
		return Entry{}, &NoMatchError{Ref: r, Root: root, SkippedDeprecated: skipped, SkippedDamaged: skippedDamaged, Hint: "pass --include-deprecated"}
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
	SkippedDamaged    []string // IDs of damaged builds the ref matched
	Hint              string
}

func (e *NoMatchError) Error() string {
	msg := fmt.Sprintf("no build of %s in the catalog %s matches %s", e.Ref.Name, e.Root, e.Ref)
	if e.SkippedDeprecated > 0 {
		msg += fmt.Sprintf(" (%d deprecated build(s) were skipped; %s to consider them)", e.SkippedDeprecated, e.Hint)
	}
	if len(e.SkippedDamaged) > 0 {
		msg += fmt.Sprintf(" (damaged, and never picked: %s; see kiln images check)", strings.Join(e.SkippedDamaged, ", "))
	}
	return msg
}
