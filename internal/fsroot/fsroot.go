// Package fsroot resolves paths inside a root tree the way a chroot would.
//
// Every path Kiln reads from or writes into an image tree goes through
// Resolve, so a hostile base whose /etc is a symlink to "/" or to
// "../../.." cannot make Kiln touch the host: absolute link targets are
// re-rooted at the tree and ".." never climbs above it.
//
// It does not open files itself and does not defend against a tree that is
// changed concurrently by another process (Kiln owns its trees while it builds).
package fsroot

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"
)

const maxLinks = 40

// Resolve returns the host path for p (an absolute path inside the tree) with
// every symlink along the way resolved inside root. The last component need
// not exist; if it is a symlink it is resolved too.
func Resolve(root, p string) (string, error) { return resolve(root, p, false) }

// ResolveForWrite is Resolve for a path Kiln is about to create, change or
// remove. It refuses (with a *LinkError naming the path and the link) when a
// symlink on the way points at the tree's root itself or climbs above it with
// "..": such a link (a base or build step that did "ln -s / /etc") would make
// Kiln write somewhere the image does not expect, so the build stops instead.
func ResolveForWrite(root, p string) (string, error) { return resolve(root, p, true) }

// LinkError reports a symlink that redirects a path Kiln writes.
type LinkError struct {
	Path   string // the path Kiln was writing, inside the tree
	Link   string // the symlink, inside the tree
	Target string // what the symlink points at
	Reason string
}

func (e *LinkError) Error() string {
	return fmt.Sprintf("refusing to write %s in the image tree: %s is a symlink to %q, which %s; a base or build step must not replace system directories with such links",
		e.Path, e.Link, e.Target, e.Reason)
}

// hostile reports why a symlink at depth (its directory's number of
// components below root) with target is refused, or "" when it is not.
func hostile(depth int, target string) string {
	if strings.HasPrefix(target, "/") {
		depth = 0
	}
	for _, c := range strings.Split(target, "/") {
		switch c {
		case "", ".":
		case "..":
			depth--
			if depth < 0 {
				return "climbs above the tree's root"
			}
		default:
			depth++
		}
	}
	if depth == 0 {
		return "points at the tree's root"
	}
	return ""
}

func resolve(root, p string, strict bool) (string, error) {
	root = filepath.Clean(root)
	rest := strings.Split(path.Clean("/"+p), "/")
	var done []string // resolved components, relative to root
	links := 0
	for len(rest) > 0 {
		c := rest[0]
		rest = rest[1:]
		switch c {
		case "", ".":
			continue
		case "..":
			if len(done) > 0 {
				done = done[:len(done)-1]
			}
			continue
		}
		host := filepath.Join(root, filepath.Join(done...), c)
		fi, err := os.Lstat(host)
		if errors.Is(err, fs.ErrNotExist) {
			done = append(done, c)
			continue
		}
		if err != nil {
			return "", err
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			done = append(done, c)
			continue
		}
		links++
		if links > maxLinks {
			return "", fmt.Errorf("resolving %s inside %s: too many levels of symbolic links", p, root)
		}
		target, err := os.Readlink(host)
		if err != nil {
			return "", err
		}
		if strict {
			if why := hostile(len(done), target); why != "" {
				return "", &LinkError{Path: path.Clean("/" + p), Link: "/" + path.Join(append(done, c)...), Target: target, Reason: why}
			}
		}
		if strings.HasPrefix(target, "/") {
			done = nil
		}
		rest = append(strings.Split(target, "/"), rest...)
	}
	return filepath.Join(root, filepath.Join(done...)), nil
}

// WriteFile writes data to p inside root, creating parent directories. Like
// every function here that changes the tree, it resolves p with ResolveForWrite.
// Existing components were resolved inside root and missing ones are created
// as plain directories, so nothing is written outside the tree.
func WriteFile(root, p string, data []byte, perm fs.FileMode) error {
	host, err := ResolveForWrite(root, p)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(host), 0o755); err != nil {
		return err
	}
	return os.WriteFile(host, data, perm)
}

// MkdirAll creates directory p inside root and returns its host path.
func MkdirAll(root, p string, perm fs.FileMode) (string, error) {
	host, err := ResolveForWrite(root, p)
	if err != nil {
		return "", err
	}
	return host, os.MkdirAll(host, perm)
}

// Remove removes p inside root (files or empty directories); a missing path is fine.
// A symlink is removed itself, never its target.
func Remove(root, p string) error {
	dir, err := parentForWrite(root, p)
	if err != nil {
		return err
	}
	err = os.Remove(filepath.Join(dir, path.Base(path.Clean("/"+p))))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}

// RemoveAll removes p and everything below it, inside root. Symlinks are not followed.
func RemoveAll(root, p string) error {
	dir, err := parentForWrite(root, p)
	if err != nil {
		return err
	}
	return os.RemoveAll(filepath.Join(dir, path.Base(path.Clean("/"+p))))
}

// parentForWrite resolves p's directory for a change to p, and names p in a *LinkError.
func parentForWrite(root, p string) (string, error) {
	dir, err := ResolveForWrite(root, path.Dir(path.Clean("/"+p)))
	var le *LinkError
	if errors.As(err, &le) {
		le.Path = path.Clean("/" + p)
	}
	return dir, err
}

// ReadFile reads p inside root.
func ReadFile(root, p string) ([]byte, error) {
	host, err := Resolve(root, p)
	if err != nil {
		return nil, err
	}
	return os.ReadFile(host)
}

// NewestFileTime is the newest modification time (Unix seconds) of a
// regular file below tree, ignoring times in the future; 1 when there is
// none. Directories, links and device nodes are left out: extracting a tree
// makes some of them anew. It walks the host path tree, following no link.
func NewestFileTime(tree string) (int64, error) {
	now := time.Now().Unix()
	var newest int64 = 1
	err := filepath.WalkDir(tree, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if t := fi.ModTime().Unix(); t > newest && t <= now {
			newest = t
		}
		return nil
	})
	return newest, err
}
