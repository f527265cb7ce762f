// Package testutil holds helpers shared by Kiln's tests.
//
// Tests that need a host tool call Require: without the tool they skip,
// unless KILN_REQUIRE_QEMU=1 (set in CI), where a missing tool is a failure.
package testutil

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/kiln-build/kiln/internal/run"
)

// Strict reports whether missing tools must fail tests instead of skipping them.
func Strict() bool { return os.Getenv("KILN_REQUIRE_QEMU") == "1" }

// Require skips (or, in strict mode, fails) the test unless every tool is on PATH.
func Require(t testing.TB, tools ...string) {
	t.Helper()
	err := run.Require(tools...)
	if err == nil {
		return
	}
	msg := err.Error()
	if Strict() {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

// RequireRoot skips (or fails in strict mode) unless running as root.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if Strict() {
		t.Fatal("this test needs root")
	}
	t.Skip("this test needs root")
}

// BusyboxTree returns a minimal root tree: a static busybox with its applets
// linked under /bin and the usual top-level directories.
func BusyboxTree(t testing.TB) string {
	t.Helper()
	RequireRoot(t)
	Require(t, "busybox")
	bb, _ := exec.LookPath("busybox")
	root := filepath.Join(t.TempDir(), "root")
	for _, d := range []string{"bin", "etc", "proc", "sys", "dev", "run", "tmp", "root"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	data, err := os.ReadFile(bb)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "bin/busybox"), data, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, applet := range []string{"sh", "true", "false", "echo", "cat", "ls", "wc", "sleep", "touch", "grep", "mount", "id"} {
		if err := os.Symlink("busybox", filepath.Join(root, "bin", applet)); err != nil {
			t.Fatal(err)
		}
	}
	return root
}
