package layers

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/kiln-build/kiln/internal/testhook"
	"github.com/kiln-build/kiln/internal/testutil"
)

// capNetBind is a security.capability value (VFS_CAP_REVISION_2) granting
// cap_net_bind_service=ep, as setcap writes it.
var capNetBind = string([]byte{1, 0, 0, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})

func must(t *testing.T, err error) {
	t.Helper()
	require.NoError(t, err)
}

func write(t *testing.T, root, rel, data string, mode os.FileMode) {
	t.Helper()
	p := filepath.Join(root, rel)
	must(t, os.MkdirAll(filepath.Dir(p), 0o755))
	must(t, os.WriteFile(p, []byte(data), mode))
	must(t, os.Chmod(p, mode))
}

// baseTree is a small tree with every kind of entry a Debian tree holds.
func baseTree(t *testing.T) string {
	root := filepath.Join(t.TempDir(), "base")
	write(t, root, "etc/passwd", "root:x:0:0::/root:/bin/sh\n", 0o644)
	write(t, root, "etc/shadow", "root:*:1::::::\n", 0o640)
	must(t, os.Chown(filepath.Join(root, "etc/shadow"), 0, 42))
	write(t, root, "usr/bin/ping", "ping binary", 0o755)
	must(t, unix.Lsetxattr(filepath.Join(root, "usr/bin/ping"), "security.capability", []byte(capNetBind), 0))
	write(t, root, "usr/bin/su", "su binary", 0o755)
	must(t, unix.Chmod(filepath.Join(root, "usr/bin/su"), 0o4755))
	write(t, root, "usr/lib/libfoo.so.1", strings.Repeat("lib", 5000), 0o644)
	must(t, os.Symlink("libfoo.so.1", filepath.Join(root, "usr/lib/libfoo.so")))
	must(t, os.Symlink("usr/lib", filepath.Join(root, "lib")))
	write(t, root, "usr/share/a", "shared data", 0o644)
	must(t, os.Link(filepath.Join(root, "usr/share/a"), filepath.Join(root, "usr/share/b")))
	write(t, root, "usr/share/pair1", "pair", 0o644)
	must(t, os.Link(filepath.Join(root, "usr/share/pair1"), filepath.Join(root, "usr/share/pair2")))
	write(t, root, "var/lib/old/x", "x", 0o644)
	write(t, root, "var/lib/old/sub/y", "y", 0o644)
	write(t, root, "var/lib/becomes-dir", "file", 0o644)
	must(t, os.MkdirAll(filepath.Join(root, "var/lib/becomes-file/z"), 0o755))
	write(t, root, "home/user/notes", "notes", 0o600)
	must(t, os.Lchown(filepath.Join(root, "home/user/notes"), 1000, 1000))
	must(t, os.Chown(filepath.Join(root, "home/user"), 1000, 1000))
	write(t, root, "etc/attr", "attr", 0o644)
	must(t, unix.Lsetxattr(filepath.Join(root, "etc/attr"), "user.kiln", []byte("v1"), 0))
	must(t, os.MkdirAll(filepath.Join(root, "tmp"), 0o755))
	must(t, unix.Chmod(filepath.Join(root, "tmp"), 0o1777))
	must(t, unix.Mknod(filepath.Join(root, "dev-null"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))))
	old := time.Date(2020, 1, 2, 3, 4, 5, 600, time.UTC)
	must(t, os.Chtimes(filepath.Join(root, "etc/passwd"), old, old))
	return root
}

// steps changes a tree the way build steps do, one function per step.
var steps = []func(t *testing.T, root string){
	func(t *testing.T, root string) { // packages: new files, setuid, capabilities, links, devices
		write(t, root, "usr/sbin/nginx", strings.Repeat("\x7fELF nginx", 300000), 0o755) // ~3 MB
		must(t, unix.Lsetxattr(filepath.Join(root, "usr/sbin/nginx"), "security.capability", []byte(capNetBind), 0))
		write(t, root, "usr/bin/newsu", "setuid and setgid", 0o755)
		must(t, unix.Chmod(filepath.Join(root, "usr/bin/newsu"), 0o6755))
		must(t, os.Chown(filepath.Join(root, "usr/bin/newsu"), 0, 5))
		must(t, unix.Chmod(filepath.Join(root, "usr/bin/newsu"), 0o6755)) // chown cleared the bits
		must(t, os.MkdirAll(filepath.Join(root, "var/www/html/deep/er"), 0o750))
		write(t, root, "var/www/html/index.html", "hello\n", 0o644)
		must(t, os.Chown(filepath.Join(root, "var/www/html"), 33, 33))
		must(t, os.Link(filepath.Join(root, "usr/lib/libfoo.so.1"), filepath.Join(root, "usr/lib/libfoo-hard.so")))
		must(t, os.Symlink("/dangling/target", filepath.Join(root, "etc/dangling")))
		must(t, unix.Mknod(filepath.Join(root, "dev-sda"), unix.S_IFBLK|0o660, int(unix.Mkdev(8, 0))))
		must(t, unix.Mkfifo(filepath.Join(root, "var/fifo"), 0o620))
		write(t, root, "empty", "", 0o644)
		sparseFile, err := os.Create(filepath.Join(root, "var/lastlog")) // 16 MiB, 4 KiB of data
		must(t, err)
		_, err = sparseFile.WriteAt([]byte(strings.Repeat("L", 4096)), 8<<20)
		must(t, err)
		must(t, sparseFile.Truncate(16<<20))
		must(t, sparseFile.Close())
		must(t, os.Mkdir(filepath.Join(root, "sticky"), 0o755))
		must(t, unix.Chmod(filepath.Join(root, "sticky"), 0o1777))
		past := time.Date(2001, 9, 9, 1, 46, 40, 123456789, time.UTC)
		must(t, os.Chtimes(filepath.Join(root, "var/www/html/index.html"), past, past))
	},
	func(t *testing.T, root string) { // config: edits, deletions, type changes, metadata only
		f, err := os.OpenFile(filepath.Join(root, "etc/passwd"), os.O_WRONLY, 0) // same size, in place
		must(t, err)
		_, err = f.WriteAt([]byte("ROOT"), 0)
		must(t, err)
		must(t, f.Close())
		must(t, os.RemoveAll(filepath.Join(root, "var/lib/old")))
		must(t, os.Remove(filepath.Join(root, "var/lib/becomes-dir")))
		write(t, root, "var/lib/becomes-dir/inside", "now a dir", 0o644)
		must(t, os.RemoveAll(filepath.Join(root, "var/lib/becomes-file")))
		write(t, root, "var/lib/becomes-file", "now a file", 0o644)
		must(t, os.Remove(filepath.Join(root, "usr/lib/libfoo.so")))
		must(t, os.Symlink("libfoo-hard.so", filepath.Join(root, "usr/lib/libfoo.so")))
		must(t, os.Chmod(filepath.Join(root, "etc/shadow"), 0o600))
		must(t, os.Lchown(filepath.Join(root, "home/user/notes"), 1001, 1001))
		must(t, unix.Lremovexattr(filepath.Join(root, "etc/attr"), "user.kiln"))
		must(t, unix.Lsetxattr(filepath.Join(root, "etc/attr"), "user.other", []byte("v2"), 0))
		must(t, unix.Lremovexattr(filepath.Join(root, "usr/bin/ping"), "security.capability"))
		// A hard link pair: one edited in place (both change), one link removed.
		must(t, os.WriteFile(filepath.Join(root, "usr/share/a"), []byte("edited through a"), 0o644))
		must(t, os.Remove(filepath.Join(root, "usr/share/pair2")))
		must(t, os.Remove(filepath.Join(root, "dev-null")))
	},
	func(t *testing.T, root string) { // the last step: one file
		write(t, root, "etc/motd", "built by kiln\n", 0o644)
	},
}

// node is everything compared of one entry of a tree.
type node struct {
	Mode          uint32
	UID, GID      uint32
	Size          int64
	Mtime         int64
	Rdev          uint64
	Nlink         uint64
	Link, Content string
	Xattrs        string
	Group         string // the other names of its inode, for hard links
}

// describe records a tree for comparison: every entry's type, mode,
// owner, size, mtime, device numbers, link count, content digest, symlink
// target, extended attributes and hard-link group.
func describe(t *testing.T, root string) map[string]node {
	out := map[string]node{}
	inodes := map[uint64][]string{}
	must(t, filepath.Walk(root, func(p string, _ os.FileInfo, err error) error {
		must(t, err)
		rel, _ := filepath.Rel(root, p)
		var st unix.Stat_t
		must(t, unix.Lstat(p, &st))
		n := node{Mode: st.Mode, UID: st.Uid, GID: st.Gid, Mtime: st.Mtim.Nano(), Rdev: uint64(st.Rdev), Nlink: uint64(st.Nlink)}
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFREG:
			data, err := os.ReadFile(p)
			must(t, err)
			sum := sha256.Sum256(data)
			n.Content, n.Size = hex.EncodeToString(sum[:]), st.Size
			inodes[st.Ino] = append(inodes[st.Ino], rel)
		case unix.S_IFLNK:
			n.Link, _ = os.Readlink(p)
		}
		x, err := listXattrs(p)
		must(t, err)
		n.Xattrs = fmt.Sprint(x)
		out[rel] = n
		return nil
	}))
	for _, names := range inodes {
		sort.Strings(names)
		for _, name := range names {
			n := out[name]
			n.Group = strings.Join(names, ",")
			out[name] = n
		}
	}
	return out
}

// run takes each step's layer the way the builder does: scan, step, scan,
// commit. It returns the keys.
func runAndCommit(t *testing.T, store *Store, root string) []string {
	var keys []string
	parent := Root("test base")
	before, err := Scan(root)
	must(t, err)
	for i, step := range steps {
		step(t, root)
		after, err := Scan(root)
		must(t, err)
		require.True(t, after.Reliable)
		key := Step{Script: []byte(fmt.Sprint("step ", i))}.Key(parent)
		_, err = store.Commit(Meta{Key: key, Parent: parent, Depth: i, Step: fmt.Sprint("step-", i), Image: "test"}, root, before, after, false)
		must(t, err)
		keys = append(keys, key)
		parent, before = key, after
	}
	return keys
}

// A chain of layers restored onto a copy of the base gives back, entry for
// entry, the tree the steps produced: modes with setuid/setgid/sticky bits,
// owners, security.capability and user xattrs (added, changed, removed),
// hard links (kept, edited, broken), symlinks, device nodes, a FIFO,
// deletions, type changes and times.
func TestLayerRoundTrip(t *testing.T) {
	testutil.RequireRoot(t)
	base := baseTree(t)
	restored := testutil.CopyTree(t, base)
	require.Equal(t, describe(t, base), describe(t, restored), "cp -a copies the base exactly")

	store := Open(filepath.Join(t.TempDir(), "layers"))
	keys := runAndCommit(t, store, base)
	var applied []string
	n, err := store.Restore(restored, keys, func(i int, e *Entry, _ time.Duration) { applied = append(applied, e.Step) })
	must(t, err)
	require.Equal(t, len(steps), n)
	require.Equal(t, []string{"step-0", "step-1", "step-2"}, applied)

	want, got := describe(t, base), describe(t, restored)
	for p, w := range want {
		require.Equal(t, w, got[p], "/%s", p)
	}
	require.Equal(t, len(want), len(got), "the same entries")
	// The few things this test relies on, checked independently.
	require.Equal(t, capNetBind, xattr(t, filepath.Join(restored, "usr/sbin/nginx"), "security.capability"))
	require.Empty(t, xattr(t, filepath.Join(restored, "usr/bin/ping"), "security.capability"))
	if _, err := exec.LookPath("getcap"); err == nil {
		out, err := exec.Command("getcap", filepath.Join(restored, "usr/sbin/nginx")).CombinedOutput()
		require.NoError(t, err, string(out))
		require.Contains(t, string(out), "cap_net_bind_service=ep")
	}
	fi, err := os.Stat(filepath.Join(restored, "usr/bin/newsu"))
	must(t, err)
	require.Equal(t, os.ModeSetuid|os.ModeSetgid|0o755, fi.Mode())
	require.NoDirExists(t, filepath.Join(restored, "var/lib/old"))
	var sp unix.Stat_t
	must(t, unix.Stat(filepath.Join(restored, "var/lastlog"), &sp))
	require.Less(t, sp.Blocks*512, int64(1<<20), "a sparse file stays sparse")
	require.NoFileExists(t, filepath.Join(restored, "usr/share/pair2"))
	var a, b unix.Stat_t
	must(t, unix.Lstat(filepath.Join(restored, "usr/share/a"), &a))
	must(t, unix.Lstat(filepath.Join(restored, "usr/share/b"), &b))
	require.Equal(t, a.Ino, b.Ino, "a and b are still one inode")

	// Each layer holds only what its step changed.
	for i, key := range keys {
		e, err := readEntry(filepath.Join(store.Dir(), key))
		must(t, err)
		t.Logf("layer %d: %d entries, %d deleted, %d bytes", i, e.Entries, len(e.Deleted), e.Size)
	}
	// Layers hold what steps wrote (a key, /etc/shadow): only root reads them.
	for _, p := range []string{keys[0], keys[0] + "/" + layerFile, keys[0] + "/" + metaFile} {
		fi, err := os.Stat(filepath.Join(store.Dir(), p))
		require.NoError(t, err)
		require.Zero(t, fi.Mode().Perm()&0o077, "%s is %s", p, fi.Mode())
	}
	last, err := readEntry(filepath.Join(store.Dir(), keys[2]))
	must(t, err)
	require.Equal(t, 2, last.Entries, "/etc and /etc/motd")
	require.Empty(t, last.Deleted)
	second, err := readEntry(filepath.Join(store.Dir(), keys[1]))
	must(t, err)
	require.Equal(t, []string{"dev-null", "usr/share/pair2", "var/lib/old"}, second.Deleted)
}

func xattr(t *testing.T, path, name string) string {
	x, err := listXattrs(path)
	must(t, err)
	return x[name]
}

// A prefix of the chain restores the tree as it was after that step, and a
// missing key ends the prefix.
func TestRestorePrefix(t *testing.T) {
	testutil.RequireRoot(t)
	base := baseTree(t)
	restored, afterOne := testutil.CopyTree(t, base), testutil.CopyTree(t, base)
	steps[0](t, afterOne)
	store := Open(filepath.Join(t.TempDir(), "layers"))
	keys := runAndCommit(t, store, base)
	n, err := store.Restore(restored, []string{keys[0], "0000", keys[2]}, nil)
	must(t, err)
	require.Equal(t, 1, n)
	w, g := describe(t, afterOne), describe(t, restored)
	for p := range w {
		x, y := w[p], g[p]
		x.Mtime, y.Mtime = 0, 0 // afterOne's step ran at another time
		require.Equal(t, x, y, "/%s", p)
	}
	require.Equal(t, len(w), len(g))
	n, err = store.Restore(testutil.CopyTree(t, base), []string{"", keys[0]}, nil)
	must(t, err)
	require.Zero(t, n, "an empty key ends the prefix")
}

// A damaged entry is never applied: it is removed and the prefix ends
// before it, with the tree as the layers before it left it.
func TestRestoreDamagedEntry(t *testing.T) {
	testutil.RequireRoot(t)
	base := baseTree(t)
	restored := testutil.CopyTree(t, base)
	store := Open(filepath.Join(t.TempDir(), "layers"))
	keys := runAndCommit(t, store, base)
	layer := filepath.Join(store.Dir(), keys[1], layerFile)
	data, err := os.ReadFile(layer)
	must(t, err)
	data[len(data)/2] ^= 0xff
	must(t, os.WriteFile(layer, data, 0o644))
	n, err := store.Restore(restored, keys, nil)
	must(t, err)
	require.Equal(t, 1, n)
	require.NoDirExists(t, filepath.Join(store.Dir(), keys[1]), "the damaged entry is removed")
	require.FileExists(t, filepath.Join(restored, "usr/sbin/nginx"), "the first layer was applied")
	require.DirExists(t, filepath.Join(restored, "var/lib/old"), "the second was not")
}

// A layer never writes through a symlink in the tree it is applied to, even
// when the tree does not match the layer.
func TestApplyRefusesSymlinkedParent(t *testing.T) {
	testutil.RequireRoot(t)
	base := baseTree(t)
	store := Open(filepath.Join(t.TempDir(), "layers"))
	keys := runAndCommit(t, store, base)

	// The second layer edits /etc/passwd in place, under an /etc it does
	// not itself record: here /etc is a link out of the tree.
	outside := t.TempDir()
	hostile := testutil.CopyTree(t, baseTree(t))
	must(t, os.RemoveAll(filepath.Join(hostile, "etc")))
	must(t, os.Symlink(outside, filepath.Join(hostile, "etc")))
	_, err := store.Restore(hostile, keys[1:2], nil)
	require.ErrorContains(t, err, "/etc is not a directory")
	left, _ := os.ReadDir(outside)
	require.Empty(t, left, "nothing was written through the link")
}

func TestStepKeys(t *testing.T) {
	s1 := Step{Script: []byte("apt-get install -y nginx\n"), Env: []string{"PATH=/bin"}}
	s2 := Step{Files: []File{{Path: "/etc/nginx/conf", Mode: 0o644, Data: []byte("a")}}}
	s3 := Step{Script: []byte("echo 1\n"), Env: []string{"PATH=/bin", "X=1"}}
	chain := func(root string, steps ...Step) []string {
		var keys []string
		for _, s := range steps {
			root = s.Key(root)
			keys = append(keys, root)
		}
		return keys
	}
	root := Root("base", "name")
	keys := chain(root, s1, s2, s3)
	require.Len(t, keys[0], 64)
	require.Equal(t, keys, chain(root, s1, s2, s3), "keys are deterministic")

	changed := s3
	changed.Env = []string{"PATH=/bin", "X=2"}
	k := chain(root, s1, s2, changed)
	require.Equal(t, keys[:2], k[:2])
	require.NotEqual(t, keys[2], k[2])

	edited := s2
	edited.Files = []File{{Path: "/etc/nginx/conf", Mode: 0o644, Data: []byte("b")}}
	k = chain(root, s1, edited, s3)
	require.Equal(t, keys[0], k[0])
	require.NotEqual(t, keys[1], k[1])
	require.NotEqual(t, keys[2], k[2], "a changed parent changes every key above it")

	moded := s2
	moded.Files = []File{{Path: "/etc/nginx/conf", Mode: 0o600, Data: []byte("a")}}
	require.NotEqual(t, keys[1], chain(root, s1, moded, s3)[1])

	k = chain(Root("another base", "name"), s1, s2, s3)
	for i := range k {
		require.NotEqual(t, keys[i], k[i])
	}
	// Fields are length-prefixed: moving bytes between them changes the key.
	require.NotEqual(t, Step{Env: []string{"A=1B=2"}}.Key(root), Step{Env: []string{"A=1", "B=2"}}.Key(root))
	require.NotEqual(t, Root("ab", "c"), Root("a", "bc"))
}

// Two builds storing the same key at once keep one whole entry, and no
// temporary directory is left.
func TestConcurrentCommits(t *testing.T) {
	testutil.RequireRoot(t)
	store := Open(filepath.Join(t.TempDir(), "layers"))
	trees := []string{baseTree(t), baseTree(t), baseTree(t), baseTree(t)}
	var wg sync.WaitGroup
	errs := make([]error, len(trees))
	for i, tree := range trees {
		wg.Add(1)
		go func() {
			defer wg.Done()
			before, err := Scan(tree)
			if err == nil {
				steps[0](t, tree)
				var after *Snapshot
				if after, err = Scan(tree); err == nil {
					_, err = store.Commit(Meta{Key: "samekey", Parent: "root", Step: "s"}, tree, before, after, i%2 == 1)
				}
			}
			errs[i] = err
		}()
	}
	wg.Wait()
	for _, err := range errs {
		must(t, err)
	}
	des, err := os.ReadDir(store.Dir())
	must(t, err)
	var names []string
	for _, de := range des {
		names = append(names, de.Name())
	}
	require.Equal(t, []string{".lock", "samekey"}, names)
	es, err := store.List()
	must(t, err)
	require.Len(t, es, 1)
	n, err := store.Restore(testutil.CopyTree(t, baseTree(t)), []string{"samekey"}, nil)
	must(t, err)
	require.Equal(t, 1, n)
}

// ls lists entries, the most recently used first; prune removes those not
// used since the cutoff, their orphaned children, damaged entries and what
// killed builds left, and nothing with --dry-run.
func TestListAndPrune(t *testing.T) {
	testutil.RequireRoot(t)
	base := baseTree(t)
	store := Open(filepath.Join(t.TempDir(), "layers"))
	keys := runAndCommit(t, store, base)
	other := Step{Script: []byte("other")}.Key(Root("other"))
	empty := testutil.CopyTree(t, base)
	snap, err := Scan(empty)
	must(t, err)
	_, err = store.Commit(Meta{Key: other, Parent: Root("other"), Step: "other"}, empty, snap, snap, false)
	must(t, err)
	must(t, os.Mkdir(filepath.Join(store.Dir(), tmpPrefix+"killed-build"), 0o755))
	must(t, os.MkdirAll(filepath.Join(store.Dir(), "damaged"), 0o755))

	old := time.Now().Add(-10 * 24 * time.Hour)
	must(t, os.Chtimes(filepath.Join(store.Dir(), keys[1]), old, old)) // the middle layer: its child is an orphan
	must(t, os.Chtimes(filepath.Join(store.Dir(), other), old.Add(time.Hour), old.Add(time.Hour)))
	es, err := store.List()
	must(t, err)
	require.Len(t, es, 4, "the temporary and damaged directories are not entries")
	require.Equal(t, keys[1], es[3].Key, "least recently used last")
	require.Equal(t, other, es[2].Key)
	require.Empty(t, es[2].Deleted)
	require.Zero(t, es[2].Entries, "nothing changed, nothing stored")

	cutoff := time.Now().Add(-7 * 24 * time.Hour)
	removed, err := store.Prune(cutoff, true)
	must(t, err)
	require.ElementsMatch(t, []string{keys[1], keys[2], other}, entryKeys(removed))
	es, _ = store.List()
	require.Len(t, es, 4, "a dry run removes nothing")

	removed, err = store.Prune(cutoff, false)
	must(t, err)
	require.ElementsMatch(t, []string{keys[1], keys[2], other}, entryKeys(removed))
	es, _ = store.List()
	require.Equal(t, []string{keys[0]}, entryKeys(es))
	left, _ := os.ReadDir(store.Dir())
	require.Len(t, left, 2, "the lock and the one entry: %v", left)
}

func entryKeys(es []Entry) []string {
	var out []string
	for _, e := range es {
		out = append(out, e.Key)
	}
	return out
}

// commitChildEnv names, for TestKilledCommitChild, the tree and the store
// (TREE:STORE) of a layer to commit while TestKilledCommitLeavesNoEntry
// kills it.
const commitChildEnv = "KILN_LAYERS_TEST_COMMIT"

// TestKilledCommitChild commits a layer and stops inside the commit
// (testhook.LayerCommit), the layer written under its temporary name,
// until it is killed.
func TestKilledCommitChild(t *testing.T) {
	tree, dir, _ := strings.Cut(testutil.ChildEnv(t, commitChildEnv), ":")
	before, err := Scan(tree)
	must(t, err)
	must(t, os.WriteFile(filepath.Join(tree, "file"), []byte("written by the step\n"), 0o644))
	after, err := Scan(tree)
	must(t, err)
	testhook.Reached = func(point string) {
		if point == testhook.LayerCommit {
			must(t, os.WriteFile(filepath.Join(tree, "in-commit"), nil, 0o644))
			select {} // until killed
		}
	}
	_, err = Open(dir).Commit(Meta{Key: "killed", Parent: "root", Step: "step"}, tree, before, after, false)
	must(t, err)
}

// A build killed while it stores a layer (the layer written, not yet
// renamed to its key) leaves no entry, only a temporary directory that no
// lookup sees and prune removes.
func TestKilledCommitLeavesNoEntry(t *testing.T) {
	tree, dir := t.TempDir(), filepath.Join(t.TempDir(), "layers")
	testutil.KillChild(t, "TestKilledCommitChild", []string{commitChildEnv + "=" + tree + ":" + dir}, 2*time.Minute, func() bool {
		_, err := os.Stat(filepath.Join(tree, "in-commit"))
		return err == nil
	})
	m, _ := filepath.Glob(filepath.Join(dir, tmpPrefix+"*", layerFile))
	require.Len(t, m, 1, "the child was killed with its layer written under the temporary name")
	require.NoDirExists(t, filepath.Join(dir, "killed"), "no entry under the key")
	tmps, _ := filepath.Glob(filepath.Join(dir, tmpPrefix+"*"))
	require.Len(t, tmps, 1, "what the commit wrote is only under its temporary name")
	store := Open(dir)
	es, err := store.List()
	must(t, err)
	require.Empty(t, es)
	restored, err := store.Restore(t.TempDir(), []string{"killed"}, nil)
	must(t, err)
	require.Zero(t, restored)
	_, err = store.Prune(time.Now().Add(-time.Hour), false)
	must(t, err)
	tmps, _ = filepath.Glob(filepath.Join(dir, tmpPrefix+"*"))
	require.Empty(t, tmps, "prune removed it")
}
