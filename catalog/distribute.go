package catalog

import (
	"context"
	"errors"
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
// PublishAs, under dest's version lock, so dest never holds a half entry.
// The copy keeps the build's visibility, shared principals and deprecation
// date; its history starts with the copy.
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
	out = Entry{Name: e.Name, Version: e.Version, Build: e.Build,
		Dir: filepath.Join(dest, e.Name, e.Version.String(), fmt.Sprint(e.Build))}
	info, err := ReadInfo(e.Dir)
	if err != nil {
		return out, false, err
	}
	if _, err := os.Stat(filepath.Join(e.Dir, "manifest.json")); err != nil {
		return out, false, fmt.Errorf("%s has no manifest.json: %w", e.ID(), err)
	}
	if done, err := alreadyThere(e, out); done || err != nil {
		return out, false, err
	}
	st, err := ReadState(e.Dir)
	if err != nil {
		return out, false, err
	}
	s, err := NewStaging(dest)
	if err != nil {
		return out, false, err
	}
	defer s.Discard()

	sums := map[string]string{} // path relative to the build -> sha256 of the source
	err = filepath.WalkDir(e.Dir, func(path string, d fs.DirEntry, err error) error {
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
			return nil // the state is written below; hidden files are temporaries
		case d.IsDir():
			return os.Mkdir(filepath.Join(s.Artifact, rel), 0o755)
		case !d.Type().IsRegular():
			return fmt.Errorf("%s: not a regular file; a build holds only files", path)
		}
		sum, err := sparse.SHA256(path)
		if err != nil {
			return err
		}
		sums[rel] = sum
		return sparse.Copy(filepath.Join(s.Artifact, rel), path)
	})
	if err != nil {
		return out, false, fmt.Errorf("copying %s to %s: %w", e.ID(), dest, err)
	}
	if err := verifyCopy(s.Artifact, sums, info); err != nil {
		return out, false, fmt.Errorf("copying %s to %s: %w", e.ID(), dest, err)
	}
	st.History = []Change{{At: now.UTC(), Action: "copy", Detail: "from " + e.Dir}}
	if err := writeState(s.Artifact, st); err != nil {
		return out, false, err
	}
	testhook.At(testhook.DistributeWindow)
	if err := ctx.Err(); err != nil {
		return out, false, fmt.Errorf("copying %s to %s: %w", e.ID(), dest, err)
	}
	if _, err := s.PublishAs(e.Name, e.Version.String(), e.Build, nil); err != nil {
		if errors.Is(err, ErrBuildExists) { // published meanwhile by another copy
			if done, err2 := alreadyThere(e, out); done || err2 != nil {
				return out, false, err2
			}
		}
		return out, false, err
	}
	return out, true, nil
}

// verifyCopy reads every copied file back and checks it against its
// source's sha256, and every output against its manifest's.
func verifyCopy(dir string, sums map[string]string, info *manifest.Manifest) error {
	for rel, want := range sums {
		got, err := sparse.SHA256(filepath.Join(dir, rel))
		if err != nil {
			return err
		}
		if got != want {
			return fmt.Errorf("%s: sha256 %s after copying, %s before", rel, got, want)
		}
	}
	for _, o := range info.Outputs {
		want, ok := sums[o.File]
		if !ok {
			return fmt.Errorf("%s: listed in manifest.json but missing from the build", o.File)
		}
		if o.SHA256 != "" && o.SHA256 != want {
			return fmt.Errorf("%s: sha256 %s, but manifest.json records %s; the source build is damaged", o.File, want, o.SHA256)
		}
	}
	return nil
}

// alreadyThere reports whether dest holds the same build as e (same
// manifest.json), and fails when it holds a different one.
func alreadyThere(e, dest Entry) (bool, error) {
	if _, err := os.Lstat(dest.Dir); err != nil {
		return false, nil
	}
	a, errA := sparse.SHA256(filepath.Join(e.Dir, "manifest.json"))
	b, errB := sparse.SHA256(filepath.Join(dest.Dir, "manifest.json"))
	if errA == nil && errB == nil && a == b {
		return true, nil
	}
	return false, fmt.Errorf("%s already holds a different %s; remove it there (kiln images rm) or publish a new build", dest.Dir, e.ID())
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
