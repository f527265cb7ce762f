package catalog

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/kiln-build/kiln/internal/sparse"
	"github.com/kiln-build/kiln/internal/testhook"
	"github.com/kiln-build/kiln/manifest"
)

// Distribute copies the build e to the catalog under dest, keeping its
// name, version and build number, as an image is copied to another region.
//
// Every file is copied (sparsely) into dest's staging directory, read back
// and checked against the sha256 of its source, and each output also against
// the sha256 its manifest records; only then is the copy published with
// PublishAs, under dest's version lock, so dest never holds a half entry
// (Receive does this). The copy keeps the build's visibility, shared
// principals and deprecation date; its history starts with the copy.
//
// When dest already has the build: if its manifest.json is the same, the
// build was distributed before and nothing is done (copied is false);
// otherwise the copy fails, since the same name/version/build would name two
// different images.
//
// A cancelled ctx (SIGINT, SIGTERM) stops the copy before it is published;
// dest then holds nothing of it.
func Distribute(ctx context.Context, e Entry, dest string, now time.Time) (out Entry, copied bool, err error) {
	srcRoot := filepath.Dir(filepath.Dir(filepath.Dir(e.Dir)))
	if same, _ := sameDir(srcRoot, dest); same {
		return Entry{}, false, fmt.Errorf("cannot distribute %s to its own catalog %s", e.ID(), dest)
	}
	sum, err := sparse.SHA256(filepath.Join(e.Dir, manifest.FileName))
	if err != nil {
		return Entry{}, false, fmt.Errorf("%s has no manifest.json: %w", e.ID(), err)
	}
	st, err := ReadState(e.Dir)
	if err != nil {
		return Entry{}, false, err
	}
	st.History = []Change{{At: now.UTC(), Action: "copy", Detail: "from " + e.Dir}}
	return Receive(ctx, dest, e, e.Dir, st, testhook.DistributeWindow, SameManifestAs(sum), func(artifact string) (map[string]string, error) {
		sums := map[string]string{} // path relative to the build -> sha256 of the source
		err := filepath.WalkDir(e.Dir, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if err := ctx.Err(); err != nil {
				return err
			}
			rel, _ := filepath.Rel(e.Dir, path)
			switch {
			case rel == ".":
				return nil
			case rel == StateFile || strings.HasPrefix(d.Name(), "."):
				return nil // the state is written by Receive; hidden files are temporaries
			case d.IsDir():
				return os.Mkdir(filepath.Join(artifact, rel), 0o755)
			case !d.Type().IsRegular():
				return fmt.Errorf("%s: not a regular file; a build holds only files", path)
			}
			sum, err := sparse.SHA256(path)
			if err != nil {
				return err
			}
			sums[rel] = sum
			return sparse.Copy(filepath.Join(artifact, rel), path)
		})
		return sums, err
	})
}

func sameDir(a, b string) (bool, error) {
	fa, err := os.Stat(a)
	if err != nil {
		return false, err
	}
	fb, err := os.Stat(b)
	if err != nil {
		return false, err
	}
	return os.SameFile(fa, fb), nil
}
