package guest

import (
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kiln-build/kiln/components"
	"github.com/kiln-build/kiln/internal/testutil"
	"github.com/stretchr/testify/require"
)

// Inject writes the harness into an ext4 at an offset without mounting, and
// leaves a filesystem e2fsck finds clean.
func TestInjectIntoExt4AtOffset(t *testing.T) {
	testutil.Require(t, "mke2fs", "debugfs", "e2fsck")
	tree := filepath.Join(t.TempDir(), "tree")
	require.NoError(t, os.MkdirAll(filepath.Join(tree, "etc/systemd/system"), 0o755))
	require.NoError(t, os.MkdirAll(filepath.Join(tree, "var"), 0o755))
	img := filepath.Join(t.TempDir(), "disk.raw")
	const off = 4 << 20
	require.NoError(t, os.WriteFile(img, nil, 0o644))
	require.NoError(t, os.Truncate(img, 64<<20))
	out := testutil.Run(t, "mke2fs", "-t", "ext4", "-q", "-F", "-b", "4096", "-E", "offset=4194304", "-d", tree, img, "8192")

	s := Suite{Image: "img's", Version: "1.2.3", Tests: []components.Step{
		{Name: "first", Script: []byte("#!/bin/sh\necho one\n"), Timeout: time.Minute},
		{Name: "second", Script: []byte("echo two\n"), Env: map[string]string{"TABLE": "gpt", "Q": "it's"}},
	}}
	require.NoError(t, Inject(context.Background(), img, off, s, io.Discard))

	target := img + "?offset=4194304"
	cat := func(p string) string {
		out, err := exec.Command("debugfs", "-R", "cat "+p, target).Output()
		require.NoError(t, err)
		return string(out)
	}
	require.Contains(t, cat("/etc/systemd/system/kiln-test.service"), "ExecStart=/bin/sh /etc/kiln-test/run")
	require.Equal(t, "first", cat("/etc/kiln-test/names/000"))
	require.Equal(t, "second", cat("/etc/kiln-test/names/001"))
	require.Equal(t, "60s", cat("/etc/kiln-test/timeouts/000"))
	require.Equal(t, "300s", cat("/etc/kiln-test/timeouts/001"))
	require.Equal(t, "echo two\n", cat("/etc/kiln-test/tests/001"))
	require.Equal(t, ":\nexport Q='it'\\''s'\nexport TABLE=gpt\n", cat("/etc/kiln-test/envs/001"))
	require.Equal(t, ":\n", cat("/etc/kiln-test/envs/000"))
	require.Contains(t, cat("/etc/kiln-test/env"), `KILN_IMAGE='img'\''s'`)
	require.Contains(t, cat("/etc/kiln-test/env"), "KILN_SECURE_BOOT=0", "only a Secure Boot boot reads the variable")
	out = testutil.Run(t, "debugfs", "-R", "stat /etc/systemd/system/multi-user.target.wants/kiln-test.service", target)
	require.Contains(t, string(out), "Type: symlink")
	out = testutil.Run(t, "debugfs", "-R", "stat /etc/kiln-test/tests/000", target)
	require.True(t, strings.Contains(string(out), "Mode:  0755") || strings.Contains(string(out), "Mode:  00755"), string(out))

	out = testutil.Run(t, "e2fsck", "-fn", target)
}

func TestInjectFailsOnNonExt4(t *testing.T) {
	testutil.Require(t, "debugfs")
	img := filepath.Join(t.TempDir(), "zero.raw")
	require.NoError(t, os.Truncate(mustCreate(t, img), 8<<20))
	err := Inject(context.Background(), img, 0, Suite{Image: "x", Version: "1"}, io.Discard)
	require.Error(t, err)
	require.Contains(t, err.Error(), "debugfs")
}

// A step that still needs its files placed or its policy applied is
// refused: the guest runs each script once, as it is.
func TestInjectRefusesUncompiledSteps(t *testing.T) {
	for _, st := range []components.Step{
		{Name: "files", Script: []byte("true\n"), Files: []components.Placed{{Path: "/etc/x", Data: []byte("x")}}},
		{Name: "retries", Script: []byte("true\n"), Retries: 1},
		{Name: "continue", Script: []byte("true\n"), Continue: true},
	} {
		err := Inject(context.Background(), filepath.Join(t.TempDir(), "none.raw"), 0, Suite{Tests: []components.Step{st}}, io.Discard)
		require.ErrorContains(t, err, `test "`+st.Name+`": the guest runs a test's script once`)
	}
}

func mustCreate(t *testing.T, p string) string {
	require.NoError(t, os.WriteFile(p, nil, 0o644))
	return p
}

// The runner is valid POSIX shell (dash, as in Debian's guests).
func TestRunnerParses(t *testing.T) {
	p := filepath.Join(t.TempDir(), "run")
	require.NoError(t, os.WriteFile(p, []byte(runner), 0o755))
	out, err := exec.Command("sh", "-n", p).CombinedOutput()
	require.NoError(t, err, string(out))
}
