package base

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kiln-build/kiln/internal/testutil"
)

// ext4Fixture writes the tree src into a new 16 MiB ext4 image with
// mke2fs -d, then runs the debugfs -w commands on it.
func ext4Fixture(t *testing.T, src string, debugfsW ...string) string {
	img := filepath.Join(t.TempDir(), "fs.raw")
	require.NoError(t, os.WriteFile(img, nil, 0o644))
	require.NoError(t, os.Truncate(img, 16<<20))
	testutil.Run(t, "mke2fs", "-q", "-t", "ext4", "-d", src, img)
	for _, c := range debugfsW {
		testutil.Run(t, "debugfs", "-w", "-R", c, img)
	}
	return img
}

// Hostile ext4 filesystems, as debugfs reports them, are refused with a
// clear error before anything is extracted, and reading them costs little:
// a directory loop (a hard link to a directory inside itself, which would
// make a walk endless) fails e2fsck, and a file name with a newline (which
// would make debugfs's listing ambiguous) is named as such.
func TestExtractExt4RefusesHostileFilesystems(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.Require(t, "mke2fs", "debugfs", "e2fsck")
	loopSrc := filepath.Join(t.TempDir(), "src")
	require.NoError(t, os.MkdirAll(filepath.Join(loopSrc, "a", "b"), 0o755))
	nlSrc := filepath.Join(t.TempDir(), "src")
	require.NoError(t, os.MkdirAll(nlSrc, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(nlSrc, "bad\nname"), []byte("x"), 0o644))
	for _, c := range []struct {
		name, img, want string
	}{
		{"directory loop", ext4Fixture(t, loopSrc, "link /a /a/b/loop"), "is not clean"},
		{"file name with a newline", ext4Fixture(t, nlSrc), `cannot read debugfs's listing of /: "/12/100644/0/0/bad" (a file name with a newline?)`},
	} {
		t.Run(c.name, func(t *testing.T) {
			dest := filepath.Join(t.TempDir(), "tree")
			var err error
			alloc := testutil.Allocated(func() { err = ExtractExt4(context.Background(), c.img, 0, dest, nil) })
			require.Error(t, err)
			require.Contains(t, err.Error(), c.want)
			require.Less(t, alloc, uint64(8<<20))
			entries, _ := os.ReadDir(dest)
			require.Empty(t, entries, "nothing was extracted")
			t.Logf("%s: %d KiB: %v", c.name, alloc>>10, err)
		})
	}
}
