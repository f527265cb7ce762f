// Package atomicfile replaces files so that a reader sees the old content or
// the new one, never a mix, and a crash (SIGKILL, power loss after the
// rename is durable) leaves one of the two.
package atomicfile

import (
	"os"
	"path/filepath"
)

// Write replaces path with data and mode perm: a temporary file in the same
// directory, written, synced, then renamed over path.
func Write(path string, data []byte, perm os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+"-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(perm); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
