package catalog

import (
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
)

// ShareGroupEnv names the group that may read shared builds on a local
// disk; without it, the group that owns the catalog's root directory.
const ShareGroupEnv = "KILN_SHARE_GROUP"

// Modes enforce a build's visibility on a local disk, where Kiln can (the
// principals themselves are recorded in catalog.json for the tools that
// serve the catalog; a local disk knows users and groups, not principals):
//
//   - private: the build's directory 0700 and its files 0600: only the
//     catalog's owner reads them;
//   - shared: 0750 and 0640, group-owned by the share group (ShareGroupEnv,
//     else the group of the catalog's root): its members read them;
//   - public: 0755 and 0644: anyone who can reach the catalog reads them.
type Modes struct {
	Dir, File fs.FileMode
	GID       int // -1: leave the group alone
}

// ModesFor returns the modes of a build with visibility vis in the catalog
// under root.
func ModesFor(root, vis string) (Modes, error) {
	switch vis {
	case Public:
		return Modes{Dir: 0o755, File: 0o644, GID: -1}, nil
	case Shared:
		gid, err := shareGroup(root)
		if err != nil {
			return Modes{}, err
		}
		return Modes{Dir: 0o750, File: 0o640, GID: gid}, nil
	default:
		return Modes{Dir: 0o700, File: 0o600, GID: -1}, nil
	}
}

// shareGroup is the group shared builds are readable by.
func shareGroup(root string) (int, error) {
	if g := os.Getenv(ShareGroupEnv); g != "" {
		if n, err := strconv.Atoi(g); err == nil && n >= 0 {
			return n, nil
		}
		grp, err := user.LookupGroup(g)
		if err != nil {
			return 0, fmt.Errorf("%s=%s: %w", ShareGroupEnv, g, err)
		}
		return strconv.Atoi(grp.Gid)
	}
	fi, err := os.Stat(root)
	if err != nil {
		return 0, err
	}
	return int(fi.Sys().(*syscall.Stat_t).Gid), nil
}

// applyModes gives the build directory dir and everything in it the modes
// of visibility vis. It never follows a symbolic link.
func applyModes(root, dir, vis string) error {
	m, err := ModesFor(root, vis)
	if err != nil {
		return err
	}
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type()&fs.ModeSymlink != 0 {
			return nil
		}
		mode := m.File
		if d.IsDir() {
			mode = m.Dir
		}
		if m.GID >= 0 {
			if err := os.Lchown(p, -1, m.GID); err != nil {
				return fmt.Errorf("giving %s to the share group %d (%s): %w", p, m.GID, ShareGroupEnv, err)
			}
		}
		return os.Chmod(p, mode)
	})
}

// modeProblems lists the files of dir whose modes or group differ from
// what visibility vis asks for.
func modeProblems(root, dir, vis string) ([]string, error) {
	m, err := ModesFor(root, vis)
	if err != nil {
		return nil, err
	}
	var out []string
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.Type()&fs.ModeSymlink != 0 {
			return nil
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return nil
		}
		want := m.File
		if d.IsDir() {
			want = m.Dir
		}
		if got := fi.Mode().Perm(); got != want {
			out = append(out, fmt.Sprintf("%s is %04o, want %04o", p, got, want))
		} else if gid := int(fi.Sys().(*syscall.Stat_t).Gid); m.GID >= 0 && gid != m.GID {
			out = append(out, fmt.Sprintf("%s belongs to group %d, want the share group %d", p, gid, m.GID))
		}
		return nil
	})
	return out, err
}
