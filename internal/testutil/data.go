package testutil

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// Text returns n bytes of compressible, line-structured text.
func Text(n int) []byte {
	var b bytes.Buffer
	for i := 0; b.Len() < n; i++ {
		fmt.Fprintf(&b, "line %d: the quick brown fox jumps over the lazy dog %x\n", i, i*i)
	}
	return b.Bytes()[:n]
}

// Binaries returns n bytes of real-looking data: files from /usr/bin and
// /usr/share/doc concatenated, padded with Text.
func Binaries(t testing.TB, n int) []byte {
	var out []byte
	for _, dir := range []string{"/usr/bin", "/usr/share/doc"} {
		_ = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
			if err != nil || len(out) >= n || !d.Type().IsRegular() {
				return nil
			}
			b, err := os.ReadFile(p)
			if err == nil {
				out = append(out, b...)
			}
			return nil
		})
	}
	if len(out) < n {
		out = append(out, Text(n-len(out))...)
	}
	return out[:n]
}
