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
package artifact

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"

	"github.com/kiln-build/kiln/internal/flock"
)

const stagingDir = ".staging"

// Staging is a build in progress.
type Staging struct {
	Dir      string // holds Work and Artifact
	Work     string // scratch space (trees, test copies); never published
	Artifact string // what gets published
	root     string
	lock     *os.File // held for the staging's lifetime so sweepers can tell it is alive
}

// NewStaging creates a staging directory under root.
func NewStaging(root string) (*Staging, error) {
	base := filepath.Join(root, stagingDir)
	if err := os.MkdirAll(base, 0o755); err != nil {
		return nil, err
	}
	Sweep(root)
	dir, err := os.MkdirTemp(base, "build-")
	if err != nil {
		return nil, err
	}
	lock, err := os.OpenFile(filepath.Join(dir, ".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		lock.Close()
		os.RemoveAll(dir)
		return nil, err
	}
	s := &Staging{Dir: dir, Work: filepath.Join(dir, "work"), Artifact: filepath.Join(dir, "artifact"), root: root, lock: lock}
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
	if s.lock != nil {
		os.RemoveAll(s.Dir)
		s.lock.Close()
		s.lock = nil
	}
}

// Sweep removes staging directories whose builds are no longer running
// (their lock is free: the process holding it died, SIGKILL included).
func Sweep(root string) {
	entries, _ := os.ReadDir(filepath.Join(root, stagingDir))
	for _, e := range entries {
		dir := filepath.Join(root, stagingDir, e.Name())
		f, err := os.Open(filepath.Join(dir, ".lock"))
		if err != nil {
			continue
		}
		if syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) == nil {
			os.RemoveAll(dir)
		}
		f.Close()
	}
}

// Publish moves the staged artifact to <root>/<name>/<version>/<build>. Under
// the version's lock it picks the next build number, calls finalize with it
// (to write the manifest into s.Artifact), and renames the directory into
// place. It returns the build number and the published path.
func (s *Staging) Publish(name, version string, finalize func(build int) error) (int, string, error) {
	vdir := filepath.Join(s.root, name, version)
	if err := os.MkdirAll(vdir, 0o755); err != nil {
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
	next := 1
	if len(builds) > 0 {
		next = builds[len(builds)-1] + 1
	}
	if err := finalize(next); err != nil {
		return 0, "", err
	}
	if err := syncDir(s.Artifact); err != nil {
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
