// Package redact hides secret values in text Kiln writes: logs, error
// messages, JSON and XML files. A Redactor replaces every occurrence of
// each secret, also in its JSON- and XML-escaped spellings, with a fixed
// stand-in; its Writer does so on a stream, holding back only what could
// be the start of a secret split across two writes.
//
// It does not decide what is secret (the recipe's sensitive variables are)
// and it cannot find a secret that was transformed (hashed, encoded,
// compressed) before it was written.
package redact

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"io"
	"os"
	"sort"
	"strings"
	"sync"

	"github.com/kiln-build/kiln/internal/atomicfile"
)

// MinLen is the length below which a value is not redacted from free text:
// a two- or three-letter value matches ordinary words everywhere, and
// replacing them would make the text unreadable without hiding anything.
const MinLen = 4

// Redactor replaces secrets with a stand-in. The zero value and nil
// redact nothing.
type Redactor struct {
	patterns [][]byte // longest first
	with     []byte
}

// New returns a Redactor for the given secret values, which replaces them
// with the stand-in with. Values shorter than MinLen are ignored.
func New(with string, secrets ...string) *Redactor {
	seen := map[string]bool{}
	var pats []string
	add := func(s string) {
		if len(s) >= MinLen && !seen[s] && !strings.Contains(with, s) {
			seen[s] = true
			pats = append(pats, s)
		}
	}
	for _, s := range secrets {
		add(s)
		if j, err := json.Marshal(s); err == nil {
			add(string(j[1 : len(j)-1]))
		}
		var b strings.Builder
		if xml.EscapeText(&b, []byte(s)) == nil {
			add(b.String())
		}
	}
	if len(pats) == 0 {
		return nil
	}
	sort.Slice(pats, func(i, j int) bool {
		if len(pats[i]) != len(pats[j]) {
			return len(pats[i]) > len(pats[j])
		}
		return pats[i] < pats[j]
	})
	r := &Redactor{with: []byte(with)}
	for _, p := range pats {
		r.patterns = append(r.patterns, []byte(p))
	}
	return r
}

// Empty says whether r redacts nothing.
func (r *Redactor) Empty() bool { return r == nil || len(r.patterns) == 0 }

// match is one occurrence of a secret in a buffer: [start, end).
type match struct{ start, end int }

// find returns the non-overlapping occurrences in b, leftmost first (the
// longest secret wins at one position).
func (r *Redactor) find(b []byte) []match {
	var all []match
	for _, p := range r.patterns {
		for off := 0; ; {
			i := bytes.Index(b[off:], p)
			if i < 0 {
				break
			}
			all = append(all, match{off + i, off + i + len(p)})
			off += i + 1
		}
	}
	sort.Slice(all, func(i, j int) bool {
		if all[i].start != all[j].start {
			return all[i].start < all[j].start
		}
		return all[i].end > all[j].end
	})
	var out []match
	end := 0
	for _, m := range all {
		if m.start >= end {
			out = append(out, m)
			end = m.end
		} else if m.end > end { // overlapping secrets: hide their union
			out[len(out)-1].end = m.end
			end = m.end
		}
	}
	return out
}

// Bytes returns b with every secret replaced (b itself when there is none).
func (r *Redactor) Bytes(b []byte) []byte {
	if r.Empty() {
		return b
	}
	ms := r.find(b)
	if len(ms) == 0 {
		return b
	}
	var out bytes.Buffer
	prev := 0
	for _, m := range ms {
		out.Write(b[prev:m.start])
		out.Write(r.with)
		prev = m.end
	}
	out.Write(b[prev:])
	return out.Bytes()
}

// String is Bytes for a string.
func (r *Redactor) String(s string) string {
	if r.Empty() {
		return s
	}
	return string(r.Bytes([]byte(s)))
}

// Contains says whether b holds a secret.
func (r *Redactor) Contains(b []byte) bool {
	return !r.Empty() && len(r.find(b)) > 0
}

// File rewrites the file at path with every secret replaced; a missing
// file is not an error.
func (r *Redactor) File(path string) error {
	if r.Empty() {
		return nil
	}
	data, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if !r.Contains(data) {
		return nil
	}
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	return atomicfile.Write(path, r.Bytes(data), fi.Mode().Perm())
}

// Error returns err with its message redacted; errors.As and errors.Is
// still see the original chain.
func (r *Redactor) Error(err error) error {
	if err == nil || r.Empty() {
		return err
	}
	msg := err.Error()
	red := r.String(msg)
	if red == msg {
		return err
	}
	return &redactedError{msg: red, err: err}
}

type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }

// Writer redacts a stream. Close (or Flush) writes what it held back.
type Writer struct {
	mu      sync.Mutex
	r       *Redactor
	w       io.Writer
	pending []byte // raw bytes that may begin a secret
}

// Writer returns a Writer that redacts what it passes on to w.
func (r *Redactor) Writer(w io.Writer) *Writer { return &Writer{r: r, w: w} }

func (w *Writer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.r.Empty() {
		_, err := w.w.Write(p)
		return len(p), err
	}
	data := append(w.pending, p...)
	hold := len(w.r.patterns[0]) - 1 // the longest secret, less one byte
	cut := len(data) - hold
	if cut < 0 {
		cut = 0
	}
	for _, m := range w.r.find(data) {
		if m.start < cut && m.end > cut {
			cut = m.end // a whole secret straddles the cut: it can be replaced now
		}
	}
	out := w.r.Bytes(data[:cut])
	w.pending = append([]byte(nil), data[cut:]...)
	if _, err := w.w.Write(out); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Flush writes the held-back bytes, redacted.
func (w *Writer) Flush() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.pending) == 0 {
		return nil
	}
	out := w.r.Bytes(w.pending)
	w.pending = nil
	_, err := w.w.Write(out)
	return err
}

// Close flushes; it does not close the underlying writer.
func (w *Writer) Close() error { return w.Flush() }
