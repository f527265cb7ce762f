package sandbox

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kiln-build/kiln/internal/run"
	"github.com/kiln-build/kiln/internal/testutil"
	"github.com/stretchr/testify/require"
)

// sh runs a shell script in the sandbox, in a new busybox tree (root), and
// returns its output and error.
func sh(t *testing.T, script string) (root, out string, err error) {
	root = testutil.BusyboxTree(t)
	var b bytes.Buffer
	err = Run(context.Background(), Spec{Root: root, Args: []string{"/bin/sh", "-c", script}, Env: DefaultEnv()}, nil, &b)
	return root, b.String(), err
}

func TestRunInsideTree(t *testing.T) {
	root, out, err := sh(t, "echo init=$(cat /proc/1/cmdline); ls /dev/null /proc/1 >/dev/null && echo ok; echo hi > /etc/motd; cat /proc/mounts | wc -l")
	require.NoError(t, err, out)
	require.Contains(t, out, "init=kiln-sandbox\n", "command must run in a new PID namespace under the helper")
	require.Contains(t, out, "ok\n")
	data, err := os.ReadFile(filepath.Join(root, "etc/motd"))
	require.NoError(t, err)
	require.Equal(t, "hi\n", string(data))

	// Nothing the sandbox mounted is visible on the host.
	mounts, err := os.ReadFile("/proc/self/mounts")
	require.NoError(t, err)
	require.NotContains(t, string(mounts), root)
}

func TestExitCodeAndOutputTail(t *testing.T) {
	_, _, err := sh(t, "echo line1; echo failing-here >&2; exit 7")
	var e *run.Error
	require.True(t, errors.As(err, &e), "%v", err)
	require.Equal(t, 7, e.ExitCode)
	require.Contains(t, e.Stderr, "failing-here")
}

func TestRefusesSymlinkedMountPoint(t *testing.T) {
	root := testutil.BusyboxTree(t)
	require.NoError(t, os.RemoveAll(filepath.Join(root, "proc")))
	require.NoError(t, os.Symlink("/", filepath.Join(root, "proc")))
	err := Run(context.Background(), Spec{Root: root, Args: []string{"/bin/true"}, Env: DefaultEnv()}, nil, &bytes.Buffer{})
	require.Error(t, err)
	require.Contains(t, err.Error(), "not a directory")
}

// Killing the parent with SIGKILL must take the whole namespace down and leave no mounts.
func TestKilledParentLeavesNothing(t *testing.T) {
	if os.Getenv("KILN_SANDBOX_KILL_CHILD") == "1" {
		root := os.Getenv("KILN_SANDBOX_ROOT")
		_ = Run(context.Background(), Spec{Root: root, Args: []string{"/bin/sh", "-c", "touch /started; " + os.Getenv("KILN_SANDBOX_SLEEP")}, Env: DefaultEnv()}, nil, os.Stdout)
		return
	}
	root := testutil.BusyboxTree(t)
	// A sleep no other process runs, so that other test runs on the machine
	// cannot be mistaken for a survivor.
	sleep := fmt.Sprintf("sleep %d", 100000+os.Getpid())
	testutil.KillChild(t, "TestKilledParentLeavesNothing", []string{"KILN_SANDBOX_KILL_CHILD=1", "KILN_SANDBOX_ROOT=" + root, "KILN_SANDBOX_SLEEP=" + sleep},
		20*time.Second, func() bool { _, err := os.Stat(filepath.Join(root, "started")); return err == nil })
	require.Eventually(t, func() bool {
		out, _ := exec.Command("pgrep", "-f", sleep).Output()
		return strings.TrimSpace(string(out)) == ""
	}, 10*time.Second, 100*time.Millisecond, "sandboxed process survived its parent")
	mounts, err := os.ReadFile("/proc/self/mounts")
	require.NoError(t, err)
	require.NotContains(t, string(mounts), root)
}
