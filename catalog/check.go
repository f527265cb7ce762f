package catalog

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/kiln-build/kiln/internal/flock"
	"github.com/kiln-build/kiln/internal/livedir"
	"github.com/kiln-build/kiln/internal/semver"
	"github.com/kiln-build/kiln/internal/sparse"
	"github.com/kiln-build/kiln/manifest"
)

// Kinds of problem Check reports.
const (
	ProblemDamaged   = "damaged"         // manifest.json or catalog.json cannot be read
	ProblemNoState   = "state-missing"   // catalog.json is missing
	ProblemMissing   = "missing-file"    // an output the manifest lists is not there
	ProblemSize      = "size-mismatch"   // an output's size differs from the manifest's
	ProblemSHA256    = "sha256-mismatch" // an output's sha256 differs from the manifest's
	ProblemStray     = "stray"           // something in the catalog that is not part of it
	ProblemLink      = "link"            // a symbolic link (the catalog holds none)
	ProblemLastBuild = "last-build"      // .last-build is lower than a published build
	ProblemTemp      = "temp-file"       // a temporary file a crash left in a build
	ProblemMode      = "mode"            // file modes do not match the build's visibility
)

// Problem is one inconsistency Check found.
type Problem struct {
	Build    string `json:"build,omitempty"` // name/version/build, when it concerns one
	Path     string `json:"path"`
	Kind     string `json:"kind"`
	Detail   string `json:"detail"`
	Repair   string `json:"repair,omitempty"` // what --repair does, or why it cannot
	Fixable  bool   `json:"repairable"`
	Repaired bool   `json:"repaired"`
}

func (p Problem) String() string {
	s := p.Path
	if p.Build != "" {
		s = p.Build
	}
	s += ": " + p.Detail
	switch {
	case p.Repaired:
		s += " (repaired: " + p.Repair + ")"
	case p.Repair != "":
		s += " (" + p.Repair + ")"
	}
	return s
}

// CheckReport is what Check found.
type CheckReport struct {
	Root     string    `json:"root"`
	Builds   int       `json:"builds"`   // build directories checked
	Swept    []string  `json:"swept"`    // what dead processes left, removed first
	Problems []Problem `json:"problems"` // every inconsistency, repaired or not
}

// Unrepaired counts the problems that remain.
func (r *CheckReport) Unrepaired() int {
	n := 0
	for _, p := range r.Problems {
		if !p.Repaired {
			n++
		}
	}
	return n
}

// Fixable counts the problems that remain and --repair would repair.
func (r *CheckReport) Fixable() int {
	n := 0
	for _, p := range r.Problems {
		if p.Fixable && !p.Repaired {
			n++
		}
	}
	return n
}

// Check reads the whole catalog under root and reports every
// inconsistency: damaged builds (an unreadable, truncated or
// unknown-version manifest.json or catalog.json), outputs that are missing
// or whose size or sha256 differs from the manifest's, stray files and
// directories, symbolic links (it never follows one, and says where those
// leading out of the catalog point), a .last-build lower than a published
// build, temporary files a crash left, and file modes that do not match a
// build's visibility. First it sweeps what dead processes left (Sweep).
//
// With repair set it repairs what the manifest allows: a missing catalog.json
// is recreated from manifest.json's catalog block; an unreadable one too (the
// damaged file is kept as catalog.json.damaged); .last-build is raised;
// temporary files are removed; modes are set. Nothing else is changed: a
// changed output byte, a damaged manifest.json, stray files and links are
// reported for a person to decide.
func Check(ctx context.Context, root string, repair bool, now time.Time) (*CheckReport, error) {
	rep := &CheckReport{Root: root, Swept: Sweep(root), Problems: []Problem{}}
	if rep.Swept == nil {
		rep.Swept = []string{}
	}
	c := &checker{ctx: ctx, root: root, repair: repair, now: now, rep: rep}
	entries, err := os.ReadDir(root)
	if errors.Is(err, fs.ErrNotExist) {
		return rep, nil
	}
	if err != nil {
		return nil, err
	}
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		p := filepath.Join(root, e.Name())
		switch {
		case e.Type()&fs.ModeSymlink != 0:
			c.link(p, "")
		case e.Name() == stagingDir && e.IsDir():
			c.staging(p)
		case e.Name() == trashDir && e.IsDir():
			left, _ := os.ReadDir(p)
			for _, l := range left {
				c.add(Problem{Path: filepath.Join(p, l.Name()), Kind: ProblemStray, Detail: "a removed build whose data could not be deleted", Repair: "delete it by hand"})
			}
		case strings.HasPrefix(e.Name(), ".") && e.IsDir():
			// .failed (logs of failed builds) and Kiln's other hidden
			// directories: not part of the catalog
		case e.IsDir() && nameRE.MatchString(e.Name()):
			if err := c.image(p, e.Name()); err != nil {
				return nil, err
			}
		default:
			c.stray(p, "not an image directory (image names are lower-case letters, digits and . _ -)")
		}
	}
	return rep, nil
}

type checker struct {
	ctx    context.Context
	root   string
	repair bool
	now    time.Time
	rep    *CheckReport
}

func (c *checker) add(p Problem) { c.rep.Problems = append(c.rep.Problems, p) }

func (c *checker) stray(path, why string) {
	c.add(Problem{Path: path, Kind: ProblemStray, Detail: why, Repair: "not Kiln's to delete: remove it by hand if nothing needs it"})
}

// link reports a symbolic link, saying whether it leads out of the catalog.
func (c *checker) link(path, build string) {
	target, _ := os.Readlink(path)
	detail := fmt.Sprintf("symbolic link to %s; the catalog holds no links and Kiln never follows one", target)
	if resolved, err := filepath.EvalSymlinks(path); err != nil {
		detail = fmt.Sprintf("dangling symbolic link to %s", target)
	} else if rootAbs, err := filepath.EvalSymlinks(c.root); err == nil && !within(rootAbs, resolved) {
		detail = fmt.Sprintf("symbolic link leaving the catalog (to %s); Kiln never follows it", resolved)
	}
	c.add(Problem{Build: build, Path: path, Kind: ProblemLink, Detail: detail, Repair: "remove the link by hand"})
}

func within(root, p string) bool {
	rel, err := filepath.Rel(root, p)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator))
}

// staging reports what is in .staging besides live builds (dead ones were
// swept already).
func (c *checker) staging(dir string) {
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		p := filepath.Join(dir, e.Name())
		switch {
		case e.Type()&fs.ModeSymlink != 0:
			c.link(p, "")
		case e.IsDir() && strings.HasPrefix(e.Name(), stagingPrefix) && livedir.Alive(p):
			// a build in progress
		case e.IsDir() && (strings.HasPrefix(e.Name(), stagingPrefix) || strings.HasPrefix(e.Name(), oldNewPrefix)):
			// being created, or without a lock: swept once older than livedir.StaleAfter
		default:
			c.stray(p, "not a staging directory of a build")
		}
	}
}

func (c *checker) image(dir, name string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		p := filepath.Join(dir, e.Name())
		v, verr := semver.Parse(e.Name())
		switch {
		case e.Type()&fs.ModeSymlink != 0:
			c.link(p, "")
		case verr == nil && e.IsDir() && v.String() == e.Name():
			if err := c.version(p, name, v); err != nil {
				return err
			}
		default:
			c.stray(p, "not a version directory (MAJOR.MINOR.PATCH)")
		}
	}
	return nil
}

func (c *checker) version(vdir, name string, v semver.Version) error {
	entries, err := os.ReadDir(vdir)
	if err != nil {
		return err
	}
	builds, err := Builds(vdir)
	if err != nil {
		return err
	}
	isBuild := map[string]bool{}
	for _, b := range builds {
		isBuild[strconv.Itoa(b)] = true
	}
	for _, e := range entries {
		p := filepath.Join(vdir, e.Name())
		switch {
		case e.Type()&fs.ModeSymlink != 0:
			c.link(p, "")
		case e.Name() == ".lock" && e.Type().IsRegular():
		case e.Name() == lastBuildFile && e.Type().IsRegular():
		case isBuild[e.Name()]:
		case strings.HasPrefix(e.Name(), "."+lastBuildFile+"-") && e.Type().IsRegular():
			c.temp(p, "")
		default:
			c.stray(p, "not a build directory (a build is a directory named by its number: 1, 2, ...)")
		}
	}
	if n := len(builds); n > 0 && lastBuild(vdir) < builds[n-1] {
		pr := Problem{Path: filepath.Join(vdir, lastBuildFile), Kind: ProblemLastBuild, Fixable: true,
			Detail: fmt.Sprintf("records %d, lower than build %d: a removed build's number could be handed out again", lastBuild(vdir), builds[n-1]),
			Repair: fmt.Sprintf("raise it to %d", builds[n-1])}
		if c.repair {
			err := func() error {
				unlock, err := flock.Lock(filepath.Join(vdir, ".lock"))
				if err != nil {
					return err
				}
				defer unlock()
				return raiseLastBuild(vdir, builds[n-1])
			}()
			pr.Repaired = err == nil
		}
		c.add(pr)
	}
	for _, b := range builds {
		c.rep.Builds++
		if err := c.build(filepath.Join(vdir, strconv.Itoa(b)), name, v, b); err != nil {
			return err
		}
	}
	return nil
}

// temp reports (and with repair removes) a temporary file a crash left.
func (c *checker) temp(path, build string) {
	pr := Problem{Build: build, Path: path, Kind: ProblemTemp, Fixable: true,
		Detail: "a temporary file left by an interrupted update", Repair: "delete it"}
	if c.repair {
		pr.Repaired = os.Remove(path) == nil
	}
	c.add(pr)
}

// knownTemp matches the temporaries atomicfile leaves beside a file.
func knownTemp(name string) bool {
	for _, f := range []string{StateFile, manifest.FileName} {
		if strings.HasPrefix(name, "."+f+"-") {
			return true
		}
	}
	return false
}

func (c *checker) build(dir, name string, v semver.Version, b int) error {
	id := fmt.Sprintf("%s/%s/%d", name, v, b)
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			c.add(Problem{Build: id, Path: p, Kind: ProblemDamaged, Detail: err.Error(), Repair: "cannot be repaired: fix the permissions, or remove the build"})
			return nil
		}
		switch {
		case p == dir:
		case d.Type()&fs.ModeSymlink != 0:
			c.link(p, id)
		case d.IsDir():
		case !d.Type().IsRegular():
			c.add(Problem{Build: id, Path: p, Kind: ProblemStray, Detail: fmt.Sprintf("a %s; a build holds only regular files", d.Type()), Repair: "remove it by hand"})
		case filepath.Dir(p) == dir && knownTemp(d.Name()):
			c.temp(p, id)
		}
		return nil
	})
	if err != nil {
		return err
	}

	data, merr := readRegular(filepath.Join(dir, manifest.FileName))
	var m *manifest.Manifest
	if merr == nil {
		m, merr = manifest.Decode(data)
	}
	switch {
	case errors.Is(merr, fs.ErrNotExist):
		c.add(Problem{Build: id, Path: filepath.Join(dir, manifest.FileName), Kind: ProblemDamaged, Detail: "manifest.json is missing",
			Repair: "cannot be repaired: the manifest is the build's record (checksums, inputs); rebuild, or remove the build"})
		return nil
	case merr != nil:
		c.add(Problem{Build: id, Path: filepath.Join(dir, manifest.FileName), Kind: ProblemDamaged, Detail: "manifest.json: " + trimPath(merr, dir),
			Repair: "cannot be repaired: the manifest is the build's record (checksums, inputs); rebuild, or remove the build"})
		return nil
	case m.Name != name || m.Version != v.String() || m.Build != b:
		c.add(Problem{Build: id, Path: filepath.Join(dir, manifest.FileName), Kind: ProblemDamaged,
			Detail: fmt.Sprintf("manifest.json names %s/%s/%d, not this build", m.Name, m.Version, m.Build),
			Repair: "cannot be repaired: a build was moved or copied by hand; remove it"})
		return nil
	}
	c.state(dir, id, m)
	c.modes(dir, id)
	for _, o := range m.Outputs {
		if err := c.output(dir, id, o); err != nil {
			return err
		}
	}
	return nil
}

// state checks catalog.json and recreates it from the manifest when repair
// is set and it is missing or unreadable.
func (c *checker) state(dir, id string, m *manifest.Manifest) {
	path := filepath.Join(dir, StateFile)
	_, err := ReadState(dir)
	fi, statErr := os.Lstat(path)
	pr := Problem{Build: id, Path: path}
	switch {
	case statErr == nil && fi.Mode()&fs.ModeSymlink != 0:
		c.add(Problem{Build: id, Path: path, Kind: ProblemDamaged, Detail: "catalog.json: " + trimPath(err, dir),
			Repair: "not repaired: remove the link by hand, then --repair recreates catalog.json"})
		return
	case errors.Is(statErr, fs.ErrNotExist):
		pr.Kind, pr.Detail = ProblemNoState, "catalog.json is missing (the build counts as private and not deprecated)"
	case errors.Is(err, ErrStateSchema):
		c.add(Problem{Build: id, Path: path, Kind: ProblemDamaged, Detail: "catalog.json: " + trimPath(err, dir),
			Repair: "not repaired: use the newer Kiln that wrote it"})
		return
	case err != nil:
		pr.Kind, pr.Detail = ProblemDamaged, "catalog.json: "+trimPath(err, dir)
	default:
		return
	}
	pr.Fixable = true
	pr.Repair = "recreate it from manifest.json's catalog block: visibility " + InitialState(m.Catalog, m.Created).EffectiveVisibility() + ", deprecation and history since publishing lost"
	if pr.Kind == ProblemDamaged {
		pr.Repair += "; the damaged file is kept as " + StateFile + ".damaged"
	}
	if c.repair {
		pr.Repaired = c.recreateState(dir, m, pr.Detail) == nil
	}
	c.add(pr)
}

func (c *checker) recreateState(dir string, m *manifest.Manifest, why string) error {
	unlock, err := flock.Lock(filepath.Join(filepath.Dir(dir), ".lock"))
	if err != nil {
		return err
	}
	defer unlock()
	path := filepath.Join(dir, StateFile)
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&fs.ModeSymlink != 0 {
			return errors.New("catalog.json is a symbolic link: remove it by hand")
		}
		if err := os.Rename(path, path+".damaged"); err != nil {
			return err
		}
	}
	s := InitialState(m.Catalog, m.Created)
	s.History = append(s.History, Change{At: c.now.UTC(), Action: "repair", Detail: "kiln images check --repair recreated catalog.json from manifest.json (" + why + ")"})
	if err := writeState(dir, s); err != nil {
		return err
	}
	return applyModes(c.root, dir, s.EffectiveVisibility())
}

// modes checks that the build's files have the modes its visibility asks
// for, and sets them when repair is set.
func (c *checker) modes(dir, id string) {
	st, err := ReadState(dir)
	if err != nil {
		return // reported by state
	}
	vis := st.EffectiveVisibility()
	bad, err := modeProblems(c.root, dir, vis)
	if err != nil {
		c.add(Problem{Build: id, Path: dir, Kind: ProblemMode, Detail: err.Error(), Repair: "cannot be checked"})
		return
	}
	if len(bad) == 0 {
		return
	}
	detail := fmt.Sprintf("%d file(s) do not have the modes of a %s build: %s", len(bad), vis, bad[0])
	if len(bad) > 1 {
		detail += ", ..."
	}
	pr := Problem{Build: id, Path: dir, Kind: ProblemMode, Detail: detail, Fixable: true, Repair: "set the modes of a " + vis + " build (docs/catalog.md)"}
	if c.repair {
		err := func() error {
			unlock, err := flock.Lock(filepath.Join(filepath.Dir(dir), ".lock"))
			if err != nil {
				return err
			}
			defer unlock()
			return applyModes(c.root, dir, vis)
		}()
		pr.Repaired = err == nil
	}
	c.add(pr)
}

// output checks one output the manifest lists against the file.
func (c *checker) output(dir, id string, o manifest.Output) error {
	path := filepath.Join(dir, o.File)
	if o.File == "" || o.File != filepath.Base(o.File) || strings.HasPrefix(o.File, ".") {
		c.add(Problem{Build: id, Path: path, Kind: ProblemDamaged, Detail: fmt.Sprintf("manifest.json names the output %q, which is not a file of the build", o.File),
			Repair: "cannot be repaired: remove the build"})
		return nil
	}
	fi, err := os.Lstat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		c.add(Problem{Build: id, Path: path, Kind: ProblemMissing, Detail: fmt.Sprintf("the %s output %s is missing", o.Format, o.File),
			Repair: "cannot be repaired: rebuild, copy the build back from a catalog that has it, or remove it"})
		return nil
	case err != nil:
		c.add(Problem{Build: id, Path: path, Kind: ProblemDamaged, Detail: err.Error(), Repair: "cannot be repaired"})
		return nil
	case !fi.Mode().IsRegular():
		return nil // a link or special file: reported by the walk
	case o.Size > 0 && fi.Size() != o.Size:
		c.add(Problem{Build: id, Path: path, Kind: ProblemSize, Detail: fmt.Sprintf("%s has %d bytes, manifest.json records %d", o.File, fi.Size(), o.Size),
			Repair: "cannot be repaired: the output changed; rebuild, copy the build back from a catalog that has it, or remove it"})
		return nil
	}
	if o.SHA256 == "" {
		return nil
	}
	if err := c.ctx.Err(); err != nil {
		return err
	}
	sum, err := sparse.SHA256(path)
	if err != nil {
		c.add(Problem{Build: id, Path: path, Kind: ProblemDamaged, Detail: err.Error(), Repair: "cannot be repaired"})
		return nil
	}
	if !strings.EqualFold(sum, o.SHA256) {
		c.add(Problem{Build: id, Path: path, Kind: ProblemSHA256, Detail: fmt.Sprintf("%s has sha256 %s, manifest.json records %s", o.File, sum, o.SHA256),
			Repair: "cannot be repaired: the output changed; rebuild, copy the build back from a catalog that has it, or remove it"})
	}
	return nil
}
