package layers

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"hash"
	"sort"
)

// Format names the layer format and the way keys are made. It is hashed
// into every key, so a Kiln that stores or keys layers differently never
// reuses another's entries; change it whenever either changes.
const Format = "kiln-layer-v1"

// Step is what a build step's result depends on, besides the tree it starts
// from (the parent key).
type Step struct {
	Script []byte   // the compiled script; nil when the step only places files
	Env    []string // the step's complete environment, in the order it is given
	Files  []File   // files Kiln places into the tree before the script runs
}

// File is a file Kiln places for a step.
type File struct {
	Path string
	Mode uint32
	Data []byte
}

// Root returns the key of the tree before the first step: a digest of
// parts, which name that tree (the base's identity and what Kiln wrote into
// it before the steps).
func Root(parts ...string) string {
	h := newKeyHash("root")
	for _, p := range parts {
		field(h, []byte(p))
	}
	return hex.EncodeToString(h.Sum(nil))
}

// Key returns the key of the layer a step makes on top of the tree whose
// key is parent. The step's name, timeout and retry policy are not part of
// it: they do not change what a successful step leaves in the tree.
func (s Step) Key(parent string) string {
	h := newKeyHash("step")
	field(h, []byte(parent))
	field(h, s.Script)
	count(h, len(s.Env))
	for _, e := range s.Env {
		field(h, []byte(e))
	}
	files := append([]File(nil), s.Files...)
	sort.SliceStable(files, func(i, j int) bool { return files[i].Path < files[j].Path })
	count(h, len(files))
	for _, f := range files {
		sum := sha256.Sum256(f.Data)
		field(h, []byte(f.Path))
		count(h, int(f.Mode))
		field(h, sum[:])
	}
	return hex.EncodeToString(h.Sum(nil))
}

func newKeyHash(kind string) hash.Hash {
	h := sha256.New()
	field(h, []byte(Format))
	field(h, []byte(kind))
	return h
}

// field writes b length-prefixed, so that no two sequences of fields hash
// the same.
func field(h hash.Hash, b []byte) {
	count(h, len(b))
	h.Write(b)
}

func count(h hash.Hash, n int) {
	var buf [8]byte
	binary.BigEndian.PutUint64(buf[:], uint64(n))
	h.Write(buf[:])
}
