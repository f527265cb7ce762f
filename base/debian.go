// Package base prepares the root tree an image starts from.
//
// Today that is a Debian suite bootstrapped with mmdebstrap from the recipe's
// mirror or, when the recipe names none, from the host's apt sources. The
// bootstrapped tree is cached under a key made of its inputs; the archive's
// InRelease digest is stored beside it, so a changed archive invalidates the
// cache while an unreachable one still lets a cached build go ahead.
//
// It does not run build steps or clean the tree (see the builder package).
package base

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/kiln-build/kiln/internal/flock"
	"github.com/kiln-build/kiln/internal/livedir"
	"github.com/kiln-build/kiln/internal/run"
)

// Programs, in variables so tests can point them elsewhere.
var (
	MmdebstrapCmd = "mmdebstrap"
	UnshareCmd    = "unshare"
	CpCmd         = "cp"
)

// cacheFormat changes whenever the way trees are bootstrapped changes, so
// old cache entries are never reused by a Kiln that would build them differently.
const cacheFormat = "debian-v1"

// bootstrapPrefix names the live directories (internal/livedir) under
// <cache>/bases that bootstraps run in before they are renamed into place.
const bootstrapPrefix = ".bootstrap-"

// Debian describes a Debian base.
type Debian struct {
	Suite      string
	Mirror     string // empty: HostMirror()
	Variant    string // mmdebstrap variant, e.g. minbase
	Arch       string
	Components []string
	Packages   []string // everything to install on top of the variant
	// Setup are files written into the tree once the essential packages are
	// installed and before the others are, so that their maintainer scripts
	// see them: initramfs-tools' configuration, read when the kernel's
	// package builds the initramfs.
	Setup []SetupFile `json:",omitempty"`
}

// SetupFile is one file of Debian.Setup.
type SetupFile struct {
	Path string // absolute, inside the tree
	Data string
	Mode os.FileMode // 0 means 0644
}

// Result is what the base stage hands on.
type Result struct {
	Tree          string // the prepared tree (a private copy, safe to modify)
	Mirror        string
	ReleaseSHA256 string // digest of the archive's InRelease file; empty if unknown
	// ReleaseURL and ReleaseDate are that file's address and Date field:
	// when the archive published what the tree was bootstrapped from. The
	// date is zero when unknown (an unreachable archive and a cache entry
	// made before Kiln recorded it).
	ReleaseURL  string
	ReleaseDate time.Time
	CacheKey    string
	CacheHit    bool
	// Bootstrapped is when the cached tree was made: with CacheKey and
	// ReleaseSHA256 it names the exact tree (the layer cache's root).
	Bootstrapped time.Time
}

// Options controls caching.
type Options struct {
	CacheDir string // e.g. /var/cache/kiln; bases go under CacheDir/bases
	Refresh  bool   // ignore a cached tree
	Log      io.Writer
	Logger   *slog.Logger
}

type cacheMeta struct {
	Format        string    `json:"format"`
	Inputs        Debian    `json:"inputs"`
	ReleaseSHA256 string    `json:"release_sha256"`
	ReleaseURL    string    `json:"release_url,omitempty"`
	ReleaseDate   int64     `json:"release_date,omitempty"` // seconds since the epoch
	Created       time.Time `json:"created"`
}

// Prepare makes dest (which must not exist) a Debian root tree for d.
func Prepare(ctx context.Context, d Debian, dest string, o Options) (*Result, error) {
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if d.Mirror == "" {
		m, err := HostMirror()
		if err != nil {
			return nil, err
		}
		d.Mirror = m
	}
	d.Packages = sortedUnique(d.Packages)
	key := cacheKey(d)
	res := &Result{Tree: dest, Mirror: d.Mirror, CacheKey: key}

	rel, err := ReadRelease(ctx, d.Mirror, d.Suite)
	if err != nil {
		o.Logger.Warn("cannot read the archive's Release file; a cached base will be used as is", "mirror", d.Mirror, "suite", d.Suite, "err", err)
	}
	release := rel.SHA256
	res.ReleaseSHA256, res.ReleaseURL, res.ReleaseDate = release, rel.URL, rel.Date

	bases := filepath.Join(o.CacheDir, "bases")
	// Bootstraps killed before they were renamed into place.
	_, _ = livedir.SweepDead(bases, bootstrapPrefix)
	entry := filepath.Join(bases, key)
	unlock, err := flock.Lock(entry + ".lock")
	if err != nil {
		return nil, err
	}
	defer unlock()

	meta, err := readMeta(entry)
	usable := err == nil && !o.Refresh && (release == "" || meta.ReleaseSHA256 == release)
	if usable {
		if release == "" { // the archive is unreachable: the cache entry says what it was made from
			res.ReleaseSHA256, res.ReleaseURL = meta.ReleaseSHA256, meta.ReleaseURL
			if meta.ReleaseDate > 0 {
				res.ReleaseDate = time.Unix(meta.ReleaseDate, 0).UTC()
			}
		}
		res.CacheHit, res.Bootstrapped = true, meta.Created
		now := time.Now()
		_ = os.Chtimes(entry, now, now) // its last use, for kiln cache ls and prune
		return res, copyTree(ctx, filepath.Join(entry, "tree"), dest, o.Log)
	}
	if release == "" && err != nil {
		return nil, fmt.Errorf("the archive at %s is unreachable and no cached base exists for suite %q", d.Mirror, d.Suite)
	}

	// Bootstrap into a live temporary directory (swept by the next
	// Prepare if this process dies), then rename it into place.
	_ = os.RemoveAll(entry + ".tmp") // what Kiln before live directories left
	live, err := livedir.Create(bases, bootstrapPrefix+key+"-", 0o755)
	if err != nil {
		return nil, err
	}
	defer live.Remove()
	tmp := live.Path
	scratch := filepath.Join(tmp, "tmp")
	if err := os.Mkdir(scratch, 0o700); err != nil {
		return nil, err
	}
	if err := bootstrap(ctx, d, filepath.Join(tmp, "tree"), scratch, o.Log); err != nil {
		return nil, err
	}
	if err := os.RemoveAll(scratch); err != nil {
		return nil, err
	}
	m := cacheMeta{Format: cacheFormat, Inputs: d, ReleaseSHA256: release, ReleaseURL: rel.URL, Created: time.Now().UTC()}
	if !rel.Date.IsZero() {
		m.ReleaseDate = rel.Date.Unix()
	}
	data, _ := json.MarshalIndent(m, "", "  ")
	if err := os.WriteFile(filepath.Join(tmp, "meta.json"), data, 0o644); err != nil {
		return nil, err
	}
	if err := os.RemoveAll(entry); err != nil {
		return nil, err
	}
	_ = os.Remove(filepath.Join(tmp, livedir.LockFile)) // the entry is no live directory; a sweep leaves a young lockless one alone
	if err := os.Rename(tmp, entry); err != nil {
		return nil, err
	}
	res.Bootstrapped = m.Created
	return res, copyTree(ctx, filepath.Join(entry, "tree"), dest, o.Log)
}

// bootstrap runs mmdebstrap into tree. Its temporary files (a GnuPG home
// for the archive's keys, ...) go to scratch, inside the bootstrap's live
// directory, so that a killed bootstrap leaves them only where the next
// Prepare sweeps, never in the system's temporary directory.
func bootstrap(ctx context.Context, d Debian, tree, scratch string, log io.Writer) error {
	setup := ""
	if len(d.Setup) > 0 {
		setup = tree + ".setup"
		defer os.RemoveAll(setup)
		if err := writeSetup(setup, d.Setup); err != nil {
			return err
		}
	}
	if err := run.Run(ctx, run.Cmd{Args: mmdebstrapArgs(d, tree, setup), Env: []string{"TMPDIR=" + scratch}, Log: log}); err != nil {
		return fmt.Errorf("bootstrapping Debian %s from %s: %w", d.Suite, d.Mirror, err)
	}
	return nil
}

// writeSetup writes the setup files below dir, as they go into the tree.
func writeSetup(dir string, files []SetupFile) error {
	for _, f := range files {
		if !filepath.IsAbs(f.Path) || filepath.Clean(f.Path) != f.Path || f.Path == "/" {
			return fmt.Errorf("base setup file %q: want a clean absolute path", f.Path)
		}
		p := filepath.Join(dir, f.Path)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		mode := f.Mode
		if mode == 0 {
			mode = 0o644
		}
		if err := os.WriteFile(p, []byte(f.Data), mode); err != nil {
			return err
		}
		if err := os.Chmod(p, mode); err != nil { // past the umask
			return err
		}
	}
	return nil
}

// mmdebstrapArgs is the bootstrap's command line; setup, when not empty, is
// the directory of setup files copied in by the essential hook.
func mmdebstrapArgs(d Debian, tree, setup string) []string {
	args := []string{
		// A private mount namespace and PID namespace: mmdebstrap mounts /proc,
		// /sys and /dev in the tree, and nothing may survive a killed build.
		UnshareCmd, "--mount", "--propagation", "private", "--pid", "--fork", "--kill-child",
		MmdebstrapCmd, "--mode=root", "--format=directory",
		"--variant=" + d.Variant,
		"--architectures=" + d.Arch,
		"--components=" + strings.Join(d.Components, ","),
	}
	if len(d.Packages) > 0 {
		args = append(args, "--include="+strings.Join(d.Packages, ","))
	}
	if setup != "" {
		// The hook runs as root with the tree as $1; existing directories
		// keep their modes.
		args = append(args, "--essential-hook=tar -C "+run.QuoteArg(setup)+` -c . | tar -C "$1" -x --no-overwrite-dir`)
	}
	return append(args, d.Suite, tree, d.Mirror)
}

func copyTree(ctx context.Context, src, dest string, log io.Writer) error {
	if err := os.MkdirAll(filepath.Dir(dest), 0o755); err != nil {
		return err
	}
	return run.Run(ctx, run.Cmd{Args: []string{CpCmd, "-a", "--reflink=auto", src, dest}, Log: log})
}

func cacheKey(d Debian) string {
	b, _ := json.Marshal(struct {
		Format string
		D      Debian
	}{cacheFormat, d})
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])[:24]
}

func readMeta(entry string) (*cacheMeta, error) {
	data, err := os.ReadFile(filepath.Join(entry, "meta.json"))
	if err != nil {
		return nil, err
	}
	var m cacheMeta
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, err
	}
	if m.Format != cacheFormat {
		return nil, errors.New("cache format changed")
	}
	if fi, err := os.Stat(filepath.Join(entry, "tree")); err != nil || !fi.IsDir() {
		return nil, errors.New("cached tree missing")
	}
	return &m, nil
}

func sortedUnique(in []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range in {
		if s != "" && !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	sort.Strings(out)
	return out
}
