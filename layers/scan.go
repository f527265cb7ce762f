package layers

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"time"

	"golang.org/x/sys/unix"
)

// Snapshot is the metadata of every entry of a tree at one moment, enough
// to tell which entries a step changed.
type Snapshot struct {
	paths []string // relative, "." first, parents before children, names sorted
	stats map[string]entryStat
	// Reliable is false when the tree holds ctimes in the future (the clock
	// was set back, or a step set it): changes made afterwards might then
	// not show, so no layer is taken from this snapshot.
	Reliable bool
}

// entryStat is what Scan records of one entry. Every field but atime is
// compared: any change to an inode's data, mode, owner, links or extended
// attributes changes its ctime, which only the kernel sets.
type entryStat struct {
	mode         uint32 // st_mode: type and permission bits
	uid, gid     uint32
	ino, nlink   uint64
	rdev         uint64
	size         int64
	mtime, ctime int64 // nanoseconds
	atime        int64 // not compared: reading a file changes it
}

func (a entryStat) same(b entryStat) bool {
	a.atime, b.atime = 0, 0
	return a == b
}

func (a entryStat) isDir() bool { return a.mode&unix.S_IFMT == unix.S_IFDIR }

// timeGranularity bounds how coarse the kernel's file timestamps are (one
// jiffy at HZ=100). Scan waits until the clock is this far past the newest
// ctime it saw, twice, so that any later change gives a strictly newer ctime.
const timeGranularity = 10 * time.Millisecond

// Scan records every entry of the tree at root, without following symlinks.
func Scan(root string) (*Snapshot, error) {
	s := &Snapshot{stats: map[string]entryStat{}, Reliable: true}
	var newest int64
	var walk func(rel string) error
	walk = func(rel string) error {
		full := filepath.Join(root, rel)
		var st unix.Stat_t
		if err := unix.Lstat(full, &st); err != nil {
			return fmt.Errorf("scanning the tree: %w", err)
		}
		es := entryStat{mode: st.Mode, uid: st.Uid, gid: st.Gid, ino: st.Ino, nlink: uint64(st.Nlink), rdev: uint64(st.Rdev),
			size: st.Size, mtime: st.Mtim.Nano(), ctime: st.Ctim.Nano(), atime: st.Atim.Nano()}
		s.paths = append(s.paths, rel)
		s.stats[rel] = es
		if es.ctime > newest {
			newest = es.ctime
		}
		if !es.isDir() {
			return nil
		}
		f, err := os.Open(full)
		if err != nil {
			return fmt.Errorf("scanning the tree: %w", err)
		}
		names, err := f.Readdirnames(-1)
		f.Close()
		if err != nil {
			return fmt.Errorf("scanning the tree: %w", err)
		}
		sort.Strings(names)
		for _, n := range names {
			if err := walk(join(rel, n)); err != nil {
				return err
			}
		}
		return nil
	}
	if err := walk("."); err != nil {
		return nil, err
	}
	settle := time.Unix(0, newest).Add(2*timeGranularity + time.Millisecond)
	switch wait := time.Until(settle); {
	case wait > time.Second:
		s.Reliable = false
	case wait > 0:
		time.Sleep(wait)
	}
	return s, nil
}

// Len is the number of entries in the snapshot.
func (s *Snapshot) Len() int { return len(s.paths) }

func join(dir, name string) string {
	if dir == "." {
		return name
	}
	return dir + "/" + name
}

func parent(rel string) string {
	d := filepath.Dir(rel)
	if d == "" {
		return "."
	}
	return d
}

// diff is what changed between two snapshots of one tree.
type diff struct {
	changed []string // entries new or changed in after, parents before children
	deleted []string // the topmost entries of before that are gone from after
}

func diffSnapshots(before, after *Snapshot) diff {
	var d diff
	for _, p := range after.paths {
		b, ok := before.stats[p]
		if !ok || !b.same(after.stats[p]) {
			d.changed = append(d.changed, p)
		}
	}
	for _, p := range before.paths {
		if _, ok := after.stats[p]; ok || p == "." {
			continue
		}
		// Under a directory that is gone or replaced, the entry goes with it.
		if ps, ok := after.stats[parent(p)]; ok && ps.isDir() {
			d.deleted = append(d.deleted, p)
		}
	}
	return d
}
