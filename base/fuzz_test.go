package base

import (
	"path"
	"strconv"
	"testing"

	"golang.org/x/sys/unix"
)

// debugfs's output is read from an untrusted filesystem's names: whatever
// it says, parseListing returns entries that lie directly in the listed
// directories (no "..", no "/" in a name) or an error, and never panics.
// testdata/fuzz/FuzzDebugfsListing holds real debugfs output (see its
// README).
func FuzzDebugfsListing(f *testing.F) {
	f.Add([]byte("debugfs 1.47.0 (5-Feb-2023)\ndebugfs: ls -p \"/\"\n/2/040755/0/0/./\n/2/040755/0/0/../\n/11/040700/0/0/lost+found/\n/12/100644/0/0/file/5/\n/13/120777/0/0/link/\n"), uint8(0))
	f.Fuzz(func(t *testing.T, out []byte, dirs uint8) {
		level := []string{"/"}
		for i := range int(dirs % 4) {
			level = append(level, "/d"+strconv.Itoa(i))
		}
		in := map[string]bool{}
		for _, d := range level {
			in[d] = true
		}
		entries, next, err := parseListing(out, level)
		if err != nil {
			return
		}
		dirsSeen := map[string]bool{}
		for _, e := range entries {
			if e.Path != path.Clean(e.Path) || !path.IsAbs(e.Path) {
				t.Fatalf("entry %q is not a clean absolute path", e.Path)
			}
			if e.Path == "/" {
				continue // the root's "."
			}
			if !in[path.Dir(e.Path)] {
				t.Fatalf("entry %q is not directly in a listed directory %v", e.Path, level)
			}
			if e.Mode&unix.S_IFMT == unix.S_IFDIR {
				dirsSeen[e.Path] = true
			}
		}
		for _, d := range next {
			if !dirsSeen[d] {
				t.Fatalf("next level %q is not a listed directory", d)
			}
		}
	})
}
