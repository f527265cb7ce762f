package layers

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/kiln-build/kiln/internal/flock"
	"github.com/kiln-build/kiln/internal/testhook"
)

// Store is the layer cache in one directory: <dir>/<key>/ holds a layer's
// meta.json and layer.tar.zst. An entry's directory mtime is its last use.
type Store struct {
	dir string
}

// Open returns the store in dir (created when first written).
func Open(dir string) *Store { return &Store{dir: dir} }

// Dir is the store's directory.
func (s *Store) Dir() string { return s.dir }

const (
	metaFile  = "meta.json"
	layerFile = "layer.tar.zst"
	tmpPrefix = ".tmp-"
	lockName  = ".lock"
)

// Meta describes one stored layer.
type Meta struct {
	Format  string    `json:"format"`
	Key     string    `json:"key"`
	Parent  string    `json:"parent"` // the key below: a layer's, or the root key when Depth is 0
	Depth   int       `json:"depth"`  // the step's position among the build steps, from 0
	Step    string    `json:"step"`
	Image   string    `json:"image"`
	Created time.Time `json:"created"`
	Entries int       `json:"entries"` // tar entries: what the step added or changed
	Deleted []string  `json:"deleted"` // what the step removed (topmost paths)
	Size    int64     `json:"size"`    // bytes of layer.tar.zst
	SHA256  string    `json:"sha256"`  // of layer.tar.zst
}

// Entry is a stored layer as listed.
type Entry struct {
	Meta
	Dir      string
	LastUsed time.Time
}

// lock takes the store's lock: shared to read or add entries, exclusive to
// remove them.
func (s *Store) lock(exclusive bool) (func(), error) {
	if exclusive {
		return flock.Lock(filepath.Join(s.dir, lockName))
	}
	return flock.LockShared(filepath.Join(s.dir, lockName))
}

// Commit stores what changed in the tree at root between before and after
// (two scans of it) as the layer m.Key. When the key is stored already (by
// another build), that entry is kept, unless replace is set. Either way the
// entry is marked used.
func (s *Store) Commit(m Meta, root string, before, after *Snapshot, replace bool) (*Entry, error) {
	unlock, err := s.lock(false)
	if err != nil {
		return nil, err
	}
	defer unlock()
	dest := filepath.Join(s.dir, m.Key)
	if e, err := readEntry(dest); err == nil && !replace {
		return e, touch(dest)
	}
	// From here on, an entry at dest (replaced, or unreadable) is moved aside.
	tmp, err := s.tempDir(m.Key)
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	d := diffSnapshots(before, after)
	m.Format, m.Created, m.Deleted = Format, time.Now().UTC(), d.deleted
	if m.Deleted == nil {
		m.Deleted = []string{}
	}
	if m.Entries, m.Size, m.SHA256, err = writeCompressed(filepath.Join(tmp, layerFile), root, after, d.changed); err != nil {
		return nil, fmt.Errorf("storing the layer of step %q: %w", m.Step, err)
	}
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(tmp, metaFile), append(data, '\n'), 0o600); err != nil {
		return nil, err
	}
	testhook.At(testhook.LayerCommit)
	if _, err := os.Lstat(dest); err == nil {
		if e, err := readEntry(dest); err == nil && !replace { // another build stored it meanwhile
			return e, touch(dest)
		}
		old, err := s.tempDir(m.Key + "-old")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(old)
		if err := os.Rename(dest, filepath.Join(old, "entry")); err != nil {
			return nil, err
		}
	}
	if err := os.Rename(tmp, dest); err != nil && !isExist(err) {
		return nil, err
	} // else another build stored the same key first: keep its entry
	if err := touch(dest); err != nil {
		return nil, err
	}
	return readEntry(dest)
}

func writeCompressed(path, root string, after *Snapshot, changed []string) (entries int, size int64, sum string, err error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return 0, 0, "", err
	}
	defer f.Close()
	h := sha256.New()
	zw, err := zstd.NewWriter(io.MultiWriter(f, h), zstd.WithEncoderLevel(zstd.SpeedFastest))
	if err != nil {
		return 0, 0, "", err
	}
	if entries, err = writeLayer(zw, root, after, changed); err != nil {
		zw.Close()
		return 0, 0, "", err
	}
	if err := zw.Close(); err != nil {
		return 0, 0, "", err
	}
	if err := f.Close(); err != nil {
		return 0, 0, "", err
	}
	fi, err := os.Stat(path)
	if err != nil {
		return 0, 0, "", err
	}
	return entries, fi.Size(), hex.EncodeToString(h.Sum(nil)), nil
}

// tempDir makes a new directory for an entry being written; only Prune,
// under the exclusive lock, removes one that a killed build left.
func (s *Store) tempDir(key string) (string, error) {
	if err := os.MkdirAll(s.dir, 0o700); err != nil {
		return "", err
	}
	var r [6]byte
	if _, err := rand.Read(r[:]); err != nil {
		return "", err
	}
	dir := filepath.Join(s.dir, tmpPrefix+key+"-"+hex.EncodeToString(r[:]))
	return dir, os.Mkdir(dir, 0o700) // a layer holds what steps wrote, secrets included: root's only
}

func isExist(err error) bool {
	return errors.Is(err, os.ErrExist) || errors.Is(err, syscall.ENOTEMPTY)
}

func touch(dir string) error {
	now := time.Now()
	return os.Chtimes(dir, now, now)
}

// ErrCorrupt is returned (wrapped) by Restore for an entry whose layer does
// not match its recorded digest; the entry is removed.
var ErrCorrupt = errors.New("cache entry is damaged")

// Restore applies to the tree at root, in order, the stored layers of the
// longest prefix of keys that are all stored and intact, and returns how
// many it applied. An empty key ends the prefix. report, if set, is called
// after each layer with its entry and how long applying it took.
//
// A damaged entry (its digest does not match) is removed and ends the
// prefix, leaving the tree as the layers before it made it. An error while
// applying a layer leaves the tree half-changed: the caller must not use it.
func (s *Store) Restore(root string, keys []string, report func(int, *Entry, time.Duration)) (int, error) {
	if _, err := os.Stat(s.dir); errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	unlock, err := s.lock(false)
	if err != nil {
		return 0, err
	}
	defer unlock()
	for i, key := range keys {
		if key == "" {
			return i, nil
		}
		start := time.Now()
		dir := filepath.Join(s.dir, key)
		e, err := readEntry(dir)
		if err != nil {
			return i, nil
		}
		f, err := os.Open(filepath.Join(dir, layerFile))
		if err != nil {
			return i, nil
		}
		err = s.apply(root, f, e)
		f.Close()
		if errors.Is(err, ErrCorrupt) {
			_ = os.RemoveAll(dir)
			return i, nil
		}
		if err != nil {
			return i, fmt.Errorf("restoring the cached layer of step %q (%s): %w", e.Step, short(key), err)
		}
		if err := touch(dir); err != nil {
			return i, err
		}
		if report != nil {
			report(i, e, time.Since(start))
		}
	}
	return len(keys), nil
}

// apply checks the layer's digest, then applies it from the same open file
// (an entry replaced meanwhile does not matter).
func (s *Store) apply(root string, f *os.File, e *Entry) error {
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return err
	}
	if hex.EncodeToString(h.Sum(nil)) != e.SHA256 {
		return fmt.Errorf("%w: %s", ErrCorrupt, e.Dir)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	zr, err := zstd.NewReader(f)
	if err != nil {
		return err
	}
	defer zr.Close()
	return applyLayer(root, zr, e.Deleted)
}

func readEntry(dir string) (*Entry, error) {
	data, err := os.ReadFile(filepath.Join(dir, metaFile))
	if err != nil {
		return nil, err
	}
	var m Meta
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("%s: %w", dir, err)
	}
	if m.Format != Format || m.Key != filepath.Base(dir) {
		return nil, fmt.Errorf("%s: not a %s entry", dir, Format)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, err
	}
	return &Entry{Meta: m, Dir: dir, LastUsed: fi.ModTime()}, nil
}

// dirEntries reads the store's directory; a store never written is empty.
func (s *Store) dirEntries() ([]os.DirEntry, error) {
	des, err := os.ReadDir(s.dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	return des, err
}

// List returns the stored layers, the most recently used first.
func (s *Store) List() ([]Entry, error) {
	des, err := s.dirEntries()
	if err != nil {
		return nil, err
	}
	var out []Entry
	for _, de := range des {
		if !de.IsDir() || strings.HasPrefix(de.Name(), ".") {
			continue
		}
		if e, err := readEntry(filepath.Join(s.dir, de.Name())); err == nil {
			out = append(out, *e)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].LastUsed.After(out[j].LastUsed) })
	return out, nil
}

// Prune removes, under the exclusive lock, the layers last used before
// cutoff, the layers whose parent layer is gone (no build can reach them),
// unreadable entries and what killed builds left. With dryRun it only says
// which layers it would remove. It returns the layers removed.
func (s *Store) Prune(cutoff time.Time, dryRun bool) ([]Entry, error) {
	des, err := s.dirEntries()
	if err != nil || des == nil {
		return nil, err
	}
	unlock, err := s.lock(true)
	if err != nil {
		return nil, err
	}
	defer unlock()
	kept := map[string]Entry{}
	var removed []Entry
	remove := func(dir string) error {
		if dryRun {
			return nil
		}
		return os.RemoveAll(dir)
	}
	for _, de := range des {
		name, dir := de.Name(), filepath.Join(s.dir, de.Name())
		if name == lockName || !de.IsDir() {
			continue
		}
		if strings.HasPrefix(name, tmpPrefix) {
			if err := remove(dir); err != nil {
				return removed, err
			}
			continue
		}
		e, err := readEntry(dir)
		if err != nil {
			if err := remove(dir); err != nil {
				return removed, err
			}
			continue
		}
		if e.LastUsed.Before(cutoff) {
			removed = append(removed, *e)
			if err := remove(dir); err != nil {
				return removed, err
			}
			continue
		}
		kept[e.Key] = *e
	}
	// Orphans: a layer is only reached through its parent layers. Remove
	// children of removed layers until nothing changes.
	for changed := true; changed; {
		changed = false
		keys := make([]string, 0, len(kept))
		for k := range kept {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			e := kept[k]
			if _, ok := kept[e.Parent]; e.Depth > 0 && !ok {
				removed = append(removed, e)
				delete(kept, k)
				changed = true
				if err := remove(e.Dir); err != nil {
					return removed, err
				}
			}
		}
	}
	return removed, nil
}

func short(key string) string {
	if len(key) > 12 {
		return key[:12]
	}
	return key
}
