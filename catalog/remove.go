package catalog

import (
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"github.com/kiln-build/kiln/internal/flock"
	"github.com/kiln-build/kiln/internal/testhook"
)

// trashDir holds builds renamed out of the catalog and not yet deleted.
const trashDir = ".trash"

// Remove deletes a published build without ever leaving a half entry: under
// the version's lock (the one Publish takes) it records the build number as
// used (so it is never handed out again) and renames the build out of the
// catalog into <root>/.trash in one step; only then is the data deleted. A
// crash after the rename leaves the data in .trash, which the next Sweep (at
// every build, and before every removal) deletes; a crash before it leaves
// the build listed and whole.
func Remove(root string, e Entry) error {
	vdir := filepath.Dir(e.Dir)
	if filepath.Join(root, e.Name, e.Version.String(), strconv.Itoa(e.Build)) != e.Dir {
		return fmt.Errorf("%s is not in the catalog %s", e.Dir, root)
	}
	Sweep(root)
	trash := filepath.Join(root, trashDir)
	if err := mkdirs(root, trashDir); err != nil {
		return err
	}
	for _, d := range []string{filepath.Join(root, e.Name), vdir} {
		if err := realDir(d); err != nil {
			return err
		}
	}
	var rnd [6]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return err
	}
	hold := filepath.Join(trash, fmt.Sprintf("%s-%s-%d-%x", e.Name, e.Version, e.Build, rnd))
	moved := false
	err := func() error {
		unlock, err := flock.Lock(filepath.Join(vdir, ".lock"))
		if err != nil {
			return err
		}
		defer unlock()
		if fi, err := os.Lstat(e.Dir); err != nil || !fi.IsDir() {
			return fmt.Errorf("%s: no such build in the catalog (removed already?)", e.ID())
		}
		if err := raiseLastBuild(vdir, e.Build); err != nil {
			return err
		}
		if err := os.Rename(e.Dir, hold); err != nil {
			return err
		}
		moved = true
		return syncDir(vdir)
	}()
	if moved {
		testhook.At(testhook.RemoveRenamed)
	}
	if err != nil && !moved {
		return err
	}
	if rmErr := os.RemoveAll(hold); rmErr != nil && err == nil {
		return fmt.Errorf("%s left the catalog, but deleting its data failed (the next build or removal retries): %w", e.ID(), rmErr)
	}
	return err
}
