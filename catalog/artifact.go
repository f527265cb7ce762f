// Package artifact publishes builds into the image catalog, a directory tree
// laid out as <root>/<name>/<version>/<build>/.
//
// A build is assembled in a staging directory under <root>/.staging and only
// renamed into place once complete, under a per-version lock that also hands
// out build numbers. A failed, interrupted or killed build therefore never
// leaves a half entry, and earlier builds are never touched. Staging
// directories of dead builds are swept at the next build.
//
// It does not decide what a build contains or how long builds are kept.
package catalog

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/kiln-build/kiln/internal/atomicfile"
	"github.com/kiln-build/kiln/internal/flock"
	"github.com/kiln-build/kiln/internal/livedir"
)

const stagingDir = ".staging"

// stagingPrefix names the live directories (internal/livedir) of builds in
// progress under .staging.
const stagingPrefix = "build-"

// Staging is a build in progress.
type Staging struct {
	Dir      string // holds Work and Artifact
	Work     string // scratch space (trees, test copies); never published
	Artifact string // what gets published
	root     string
	live     *livedir.Dir // held for the staging's lifetime so sweepers can tell it is alive
}

// NewStaging creates a staging directory under root, after sweeping what
// dead builds left there.
func NewStaging(root string) (*Staging, error) {
	base := filepath.Join(root, stagingDir)
	if err := os.MkdirAll(root, 0o755); err != nil {
		return nil, err
	}
	if err := mkdirs(root, stagingDir); err != nil {
		return nil, err
	}
	Sweep(root)
	live, err := livedir.Create(base, stagingPrefix, 0o700) // a private build is never readable by others, even while it is built
	if err != nil {
		return nil, err
	}
	dir := live.Path
	s := &Staging{Dir: dir, Work: filepath.Join(dir, "work"), Artifact: filepath.Join(dir, "artifact"), root: root, live: live}
	for _, d := range []string{s.Work, s.Artifact} {
		if err := os.Mkdir(d, 0o755); err != nil {
			s.Discard()
			return nil, err
		}
	}
	return s, nil
}

// Discard removes the staging directory. It is safe to call more than once.
func (s *Staging) Discard() {
	if s.live != nil {
		_ = s.live.Remove()
		s.live = nil
	}
}

// oldNewPrefix names the staging directories of older Kilns while they
// were being created; they are swept once older than an hour.
const oldNewPrefix = "new-"

// Sweep removes what dead processes left in the catalog: staging
// directories whose builds are no longer running (their lock is free: the
// process holding it died, SIGKILL included), and what removals renamed out
// of the catalog but did not finish deleting. A live build's staging is
// never touched. Every command that opens the catalog calls it; it returns
// what it removed.
func Sweep(root string) []string {
	var removed []string
	var trash []os.DirEntry
	if realDir(filepath.Join(root, trashDir)) == nil {
		trash, _ = os.ReadDir(filepath.Join(root, trashDir))
	}
	for _, e := range trash {
		p := filepath.Join(root, trashDir, e.Name())
		if os.RemoveAll(p) == nil {
			removed = append(removed, p)
		}
	}
	base := filepath.Join(root, stagingDir)
	if realDir(base) != nil {
		return removed // missing, or a link: never followed
	}
	dead, _ := livedir.SweepDead(base, stagingPrefix)
	removed = append(removed, dead...)
	olds, _ := os.ReadDir(base)
	for _, e := range olds {
		if fi, err := e.Info(); err == nil && strings.HasPrefix(e.Name(), oldNewPrefix) && time.Since(fi.ModTime()) > livedir.StaleAfter {
			p := filepath.Join(base, e.Name())
			if os.RemoveAll(p) == nil {
				removed = append(removed, p)
			}
		}
	}
	return removed
}

// Publish moves the staged artifact to <root>/<name>/<version>/<build>. Under
// the version's lock it picks the next build number, calls finalize with it
// (to write the manifest into s.Artifact), and renames the directory into
// place. It returns the build number and the published path.
//
// Build numbers are never handed out twice, even after a build is removed:
// the highest number ever published is kept in <version>/.last-build (a hint
// that only ever raises the next number; the build directories stay the
// source of truth).
func (s *Staging) Publish(name, version string, finalize func(build int) error) (int, string, error) {
	return s.publish(name, version, 0, finalize)
}

// ErrBuildExists is returned by PublishAs when the build number is taken.
var ErrBuildExists = errors.New("the build number is already taken in this catalog")

// PublishAs is Publish with a given build number, for copies of a build
// published elsewhere (distribution). It fails with ErrBuildExists when the
// catalog already has that build.
func (s *Staging) PublishAs(name, version string, build int, finalize func(build int) error) (string, error) {
	if build < 1 {
		return "", fmt.Errorf("build number %d: must be 1 or more", build)
	}
	_, path, err := s.publish(name, version, build, finalize)
	return path, err
}

func (s *Staging) publish(name, version string, want int, finalize func(build int) error) (int, string, error) {
	vdir := filepath.Join(s.root, name, version)
	if err := mkdirs(s.root, name, version); err != nil {
		return 0, "", err
	}
	unlock, err := flock.Lock(filepath.Join(vdir, ".lock"))
	if err != nil {
		return 0, "", err
	}
	defer unlock()
	builds, err := Builds(vdir)
	if err != nil {
		return 0, "", err
	}
	next := lastBuild(vdir) + 1
	if len(builds) > 0 && builds[len(builds)-1] >= next {
		next = builds[len(builds)-1] + 1
	}
	if want > 0 {
		if _, err := os.Lstat(filepath.Join(vdir, strconv.Itoa(want))); err == nil {
			return 0, "", fmt.Errorf("%s/%s/%d: %w", name, version, want, ErrBuildExists)
		}
		next = want
	}
	if finalize != nil {
		if err := finalize(next); err != nil {
			return 0, "", err
		}
	}
	st, err := ReadState(s.Artifact)
	if err != nil {
		return 0, "", err
	}
	if err := applyModes(s.root, s.Artifact, st.EffectiveVisibility()); err != nil {
		return 0, "", err
	}
	if err := syncDir(s.Artifact); err != nil {
		return 0, "", err
	}
	if err := raiseLastBuild(vdir, next); err != nil {
		return 0, "", err
	}
	dest := filepath.Join(vdir, strconv.Itoa(next))
	if err := os.Rename(s.Artifact, dest); err != nil {
		return 0, "", fmt.Errorf("publishing %s: %w", dest, err)
	}
	if err := syncDir(vdir); err != nil {
		return 0, "", err
	}
	return next, dest, nil
}

const lastBuildFile = ".last-build"

// lastBuild reads the highest build number ever published in vdir, 0 when
// unknown. Call it under the version's lock.
func lastBuild(vdir string) int {
	data, err := os.ReadFile(filepath.Join(vdir, lastBuildFile))
	if err != nil {
		return 0
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil || n < 0 {
		return 0
	}
	return n
}

// raiseLastBuild records n as the highest build number of vdir unless a
// higher one is recorded, replacing the file atomically. Call it under the
// version's lock.
func raiseLastBuild(vdir string, n int) error {
	if lastBuild(vdir) >= n {
		return nil
	}
	return atomicfile.Write(filepath.Join(vdir, lastBuildFile), []byte(strconv.Itoa(n)+"\n"), 0o644)
}

// Builds lists the published build numbers of a version directory, ascending.
func Builds(vdir string) ([]int, error) {
	entries, err := os.ReadDir(vdir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []int
	for _, e := range entries {
		if n, err := strconv.Atoi(e.Name()); err == nil && e.IsDir() && n > 0 && !strings.HasPrefix(e.Name(), "0") {
			out = append(out, n)
		}
	}
	sort.Ints(out)
	return out, nil
}

// mkdirs makes root/a/b/... one directory at a time, refusing to go
// through a symbolic link (MkdirAll would follow one out of the catalog).
func mkdirs(root string, parts ...string) error {
	dir := root
	for _, p := range parts {
		dir = filepath.Join(dir, p)
		if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
			return err
		}
		if err := realDir(dir); err != nil {
			return err
		}
	}
	return nil
}

// realDir fails unless dir is a directory itself: a symbolic link inside the
// catalog that stands for one of its directories (and may lead out of it)
// is never followed.
func realDir(dir string) error {
	fi, err := os.Lstat(dir)
	if err != nil {
		return err
	}
	if fi.Mode()&os.ModeSymlink != 0 {
		target, _ := os.Readlink(dir)
		return fmt.Errorf("%s is a symbolic link (to %s), not a directory of the catalog; Kiln does not follow it (kiln images check lists such links)", dir, target)
	}
	if !fi.IsDir() {
		return fmt.Errorf("%s is not a directory", dir)
	}
	return nil
}

func syncDir(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if e.Type().IsRegular() {
			if f, err := os.OpenFile(filepath.Join(dir, e.Name()), os.O_RDWR, 0); err == nil {
				_ = f.Sync()
				f.Close()
			}
		}
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
