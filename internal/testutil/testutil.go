// Package testutil holds helpers shared by Kiln's tests.
//
// Tests that need a host tool call Require: without the tool they skip,
// unless KILN_REQUIRE_QEMU=1 (set in CI), where a missing tool is a failure.
package testutil

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/kiln-build/kiln/internal/run"
	"github.com/kiln-build/kiln/internal/sparse"
)

// Strict reports whether missing tools must fail tests instead of skipping them.
func Strict() bool { return os.Getenv("KILN_REQUIRE_QEMU") == "1" }

// Require skips (or, in strict mode, fails) the test unless every tool is
// on PATH. A tool of run.GoJudgeTools is built first when PATH lacks it.
func Require(t testing.TB, tools ...string) {
	t.Helper()
	err := provideGoTools(tools)
	if err == nil {
		err = run.Require(tools...)
	}
	if err == nil {
		return
	}
	msg := err.Error()
	if Strict() {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

// Have reports whether every tool is on PATH, for a check a test makes
// when it can. In strict mode a missing tool fails the test instead.
func Have(t testing.TB, tools ...string) bool {
	t.Helper()
	err := provideGoTools(tools)
	if err == nil {
		err = run.Require(tools...)
	}
	if err == nil {
		return true
	}
	if Strict() {
		t.Fatal(err.Error())
	}
	t.Logf("check skipped: %v", err)
	return false
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

// Run runs a program and returns its output (stdout and stderr). If the
// program fails, the test fails with the quoted command line and the
// output.
func Run(t testing.TB, name string, args ...string) string {
	t.Helper()
	return RunStdin(t, "", name, args...)
}

// RunStdin is Run with stdin.
func RunStdin(t testing.TB, stdin, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", run.Quote(cmd.Args), err, out)
	}
	return string(out)
}

// FileSHA256 is the hex SHA-256 of the file at path.
func FileSHA256(t testing.TB, path string) string {
	t.Helper()
	sum, err := sparse.SHA256(path)
	if err != nil {
		t.Fatal(err)
	}
	return sum
}

// KillChild runs this test binary again to run only the test named child,
// with env added to its environment, until ready reports true (within the
// given time), then SIGKILLs it and waits for it: for tests of what a
// killed process leaves behind. The child reads env with ChildEnv.
func KillChild(t testing.TB, child string, env []string, within time.Duration, ready func() bool) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^"+child+"$")
	cmd.Env = append(os.Environ(), env...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Wait() }()
	for deadline := time.Now().Add(within); !ready(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			t.Fatalf("%s was not ready within %v", child, within)
		}
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
}

// ChildEnv returns the environment variable name in a test that KillChild
// runs; in any other run it skips the test, which is no test of its own.
func ChildEnv(t testing.TB, name string) string {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		t.Skip("run by another test, through testutil.KillChild")
	}
	return v
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

// Allocated returns the bytes fn allocated on the heap (the growth of
// runtime.MemStats.TotalAlloc, every goroutine's), for tests that bound
// what a parser of hostile input allocates. Run such tests sequentially.
func Allocated(fn func()) uint64 {
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	fn()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// CopyTree copies a tree with cp -a (owners, modes, times, xattrs, links)
// into a new temporary directory and returns the copy's path.
func CopyTree(t testing.TB, src string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "copy")
	Run(t, "cp", "-a", src, dst)
	return dst
}
