package base

import (
	"errors"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/kiln-build/kiln/internal/flock"
	"github.com/kiln-build/kiln/internal/livedir"
)

// CacheEntry is one cached base, as kiln cache ls shows it.
type CacheEntry struct {
	Key      string
	Dir      string
	Inputs   Debian
	Release  string // the archive's InRelease digest it was bootstrapped from
	Created  time.Time
	LastUsed time.Time // the entry's mtime: Prepare touches it on every use
	Size     int64     // disk usage of the tree, hard links counted once
}

// CachedBases lists the bases cached under cacheDir, the most recently
// used first. Unreadable entries are left out.
func CachedBases(cacheDir string) ([]CacheEntry, error) {
	keys, err := cachedKeys(cacheDir)
	var out []CacheEntry
	for _, key := range keys {
		if e, err := cacheEntry(filepath.Join(cacheDir, "bases", key)); err == nil {
			out = append(out, *e)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].LastUsed.After(out[j].LastUsed) })
	return out, err
}

// cachedKeys lists the keys of the directories under cacheDir/bases: the
// entries, and the KEY.tmp a bootstrap of an older Kiln, killed before its
// rename, left. (Bootstraps now run in live directories, .bootstrap-*.)
func cachedKeys(cacheDir string) ([]string, error) {
	des, err := os.ReadDir(filepath.Join(cacheDir, "bases"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	var keys []string
	seen := map[string]bool{}
	for _, de := range des {
		key := strings.TrimSuffix(de.Name(), ".tmp")
		if de.IsDir() && !strings.Contains(key, ".") && !seen[key] {
			seen[key] = true
			keys = append(keys, key)
		}
	}
	return keys, err
}

func cacheEntry(dir string) (*CacheEntry, error) {
	m, err := readMeta(dir)
	if err != nil {
		return nil, err
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, err
	}
	return &CacheEntry{Key: filepath.Base(dir), Dir: dir, Inputs: m.Inputs, Release: m.ReleaseSHA256, Created: m.Created,
		LastUsed: fi.ModTime(), Size: diskUsage(filepath.Join(dir, "tree"))}, nil
}

// diskUsage adds up the blocks a tree's entries use, each inode once.
func diskUsage(root string) int64 {
	var total int64
	seen := map[uint64]bool{}
	_ = filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return nil
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok && !seen[st.Ino] {
			seen[st.Ino] = true
			total += st.Blocks * 512
		}
		return nil
	})
	return total
}

// PruneBases removes the cached bases last used before cutoff, and what
// interrupted bootstraps left (the live directories of dead bootstraps, and
// the KEY.tmp of older Kilns), each base under the entry's lock (a build
// that is copying the base finishes first). With dryRun it removes
// nothing. It returns the bases removed.
func PruneBases(cacheDir string, cutoff time.Time, dryRun bool) ([]CacheEntry, error) {
	if !dryRun {
		if _, err := livedir.SweepDead(filepath.Join(cacheDir, "bases"), bootstrapPrefix); err != nil {
			return nil, err
		}
	}
	keys, err := cachedKeys(cacheDir)
	if err != nil {
		return nil, err
	}
	var removed []CacheEntry
	for _, key := range keys {
		gone, err := pruneBase(filepath.Join(cacheDir, "bases", key), cutoff, dryRun)
		if err != nil {
			return removed, err
		}
		if gone != nil {
			removed = append(removed, *gone)
		}
	}
	return removed, nil
}

// pruneBase removes one entry if it was last used before cutoff (or is
// unreadable), and its leftover .tmp. The lock file stays: a build may be
// waiting on it.
func pruneBase(entry string, cutoff time.Time, dryRun bool) (*CacheEntry, error) {
	unlock, err := flock.Lock(entry + ".lock")
	if err != nil {
		return nil, err
	}
	defer unlock()
	e, err := cacheEntry(entry)
	if err == nil && !e.LastUsed.Before(cutoff) {
		return nil, nil
	}
	if dryRun {
		return e, nil
	}
	if err := os.RemoveAll(entry + ".tmp"); err != nil {
		return nil, err
	}
	return e, os.RemoveAll(entry)
}
