// Package flock takes advisory locks on files. The kernel releases them
// when the holder dies, SIGKILL included, so they never go stale.
package flock

import (
	"os"
	"path/filepath"
	"syscall"
)

// Lock takes an exclusive flock on path (created if missing, with its
// directory), waiting for other holders. The returned function releases it.
func Lock(path string) (func(), error) { return lock(path, syscall.LOCK_EX) }

// LockShared takes a shared flock on path: any number of shared holders,
// but none while someone holds it exclusively.
func LockShared(path string) (func(), error) { return lock(path, syscall.LOCK_SH) }

func lock(path string, how int) (func(), error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), how); err != nil {
		f.Close()
		return nil, err
	}
	return func() { _ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN); f.Close() }, nil
}
