// Package livedir makes scratch directories that a crash cannot leak: each
// directory holds a lock file that its creating process keeps locked
// (flock) for as long as it uses the directory. The kernel drops the lock
// when that process dies, SIGKILL included, so a later run tells a dead
// process's leftovers from a live process's work by trying the lock, and
// SweepDead removes only the former.
//
// Every temporary or staging directory Kiln creates beside data it must not
// lose (catalog staging, kiln convert's temporaries next to the output, the
// base cache's bootstraps, kiln test's scratch) is a live directory, and
// the command that uses a parent directory sweeps it first.
//
// It does not decide where directories go or when to sweep: callers do.
package livedir

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// LockFile is the name of the lock file inside a live directory.
const LockFile = ".lock"

// bornInfix marks a directory between its creation and the moment its lock
// is held; SweepDead leaves such directories alone until StaleAfter.
const bornInfix = "born-"

// StaleAfter is how long SweepDead leaves a directory alone whose liveness
// it cannot test: one still being created (no lock yet), or one without a
// lock file at all (made by an older Kiln).
const StaleAfter = time.Hour

// Dir is a live directory held by this process.
type Dir struct {
	Path string
	lock *os.File
}

// Create makes a new directory parent/prefix<random> (parent is created if
// missing) and holds its lock until Remove or Release. The directory is
// created under a name SweepDead leaves alone and renamed to its final name
// only once its lock is held, so a concurrent sweep never takes a newborn
// directory for a dead one.
func Create(parent, prefix string, perm fs.FileMode) (*Dir, error) {
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp(parent, prefix+bornInfix)
	if err != nil {
		return nil, err
	}
	if perm != 0 {
		if err := os.Chmod(tmp, perm); err != nil {
			os.RemoveAll(tmp)
			return nil, err
		}
	}
	lock, err := os.OpenFile(filepath.Join(tmp, LockFile), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		os.RemoveAll(tmp)
		return nil, err
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		lock.Close()
		os.RemoveAll(tmp)
		return nil, err
	}
	dir := filepath.Join(parent, prefix+strings.TrimPrefix(filepath.Base(tmp), prefix+bornInfix))
	if err := os.Rename(tmp, dir); err != nil {
		lock.Close()
		os.RemoveAll(tmp)
		return nil, err
	}
	return &Dir{Path: dir, lock: lock}, nil
}

// Remove deletes the directory and releases its lock. It is safe to call
// more than once.
func (d *Dir) Remove() error {
	if d.lock == nil {
		return nil
	}
	err := os.RemoveAll(d.Path)
	d.lock.Close()
	d.lock = nil
	return err
}

// Alive reports whether a live process holds dir's lock. A directory
// without a lock file is not known to be alive.
func Alive(dir string) bool {
	f, err := os.Open(filepath.Join(dir, LockFile))
	if err != nil {
		return false
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		return true
	}
	_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
	return false
}

// SweepDead removes the directories parent/prefix* that no live process
// holds: those whose lock is free (their creator died), and those whose
// liveness cannot be tested (still being created, or without a lock file)
// once they are older than StaleAfter. Directories a live process holds
// are never touched. It returns the directories it removed; a missing
// parent is no error.
func SweepDead(parent, prefix string) ([]string, error) {
	entries, err := os.ReadDir(parent)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var removed []string
	var errs []error
	for _, e := range entries {
		name := e.Name()
		if !e.IsDir() || !strings.HasPrefix(name, prefix) {
			continue
		}
		dir := filepath.Join(parent, name)
		if !dead(dir, strings.HasPrefix(name, prefix+bornInfix), e) {
			continue
		}
		if err := os.RemoveAll(dir); err != nil {
			errs = append(errs, err)
			continue
		}
		removed = append(removed, dir)
	}
	return removed, errors.Join(errs...)
}

// dead says whether dir may be removed. It takes the lock itself while it
// decides, so the answer cannot go stale: a directory whose lock it took
// has no owner, and none can appear (owners only ever lock directories
// they created).
func dead(dir string, newborn bool, e fs.DirEntry) bool {
	old := func() bool {
		fi, err := e.Info()
		return err == nil && time.Since(fi.ModTime()) > StaleAfter
	}
	if newborn {
		return old()
	}
	f, err := os.Open(filepath.Join(dir, LockFile))
	if errors.Is(err, fs.ErrNotExist) {
		return old()
	}
	if err != nil {
		return false
	}
	defer f.Close()
	return syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) == nil
}
