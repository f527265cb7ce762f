package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// The kill matrix judges strays by family (e2e_kill_probe_test.go): what
// the killed process started counts wherever the kernel reparented it, and
// no other process on the machine does. Here the killed process is a shell
// in a session of its own, as the matrix starts kiln, beside a bystander in
// this binary's session and another session's leader with its child, as
// the matrix's other rows and other tests run beside it.
func TestKillFamilyIsWhatTheKilledProcessStarted(t *testing.T) {
	dir := t.TempDir()
	var started []int // every process this test starts, killed at its end
	t.Cleanup(func() {
		for _, pid := range started {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	})
	start := func(setsid bool, script string) *exec.Cmd {
		cmd := exec.Command("sh", "-c", script, "sh", dir)
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: setsid}
		require.NoError(t, cmd.Start())
		started = append(started, cmd.Process.Pid)
		go func() { _ = cmd.Wait() }()
		return cmd
	}
	pidIn := func(name string) int {
		var pid int
		require.Eventually(t, func() bool {
			data, err := os.ReadFile(filepath.Join(dir, name))
			if err != nil || !strings.HasSuffix(string(data), "\n") {
				return false
			}
			pid, err = strconv.Atoi(strings.TrimSpace(string(data)))
			return err == nil
		}, 10*time.Second, 10*time.Millisecond, "%s written", name)
		started = append(started, pid)
		return pid
	}

	bystander := start(false, `exec sleep 300`)
	other := start(true, `sleep 300 & echo $! > "$1/other-child"; wait`)
	otherChild := pidIn("other-child")
	// The killed process: a child that stays below it, a child that leaves
	// its session (setsid) but stays below it, and a daemon whose parent
	// exited at once, so that it is below nothing of the shell's when the
	// family is taken; SIGKILL leaves all three running.
	killed := start(true, `
sh -c 'sleep 300 & echo $! > "$1/daemon"' sh "$1"
sleep 300 & echo $! > "$1/child"
setsid sleep 300 & echo $! > "$1/left-session"
wait`)
	daemon, child, leftSession := pidIn("daemon"), pidIn("child"), pidIn("left-session")
	require.Eventually(t, func() bool {
		p, ok := readProc(daemon)
		return ok && p.ppid != killed.Process.Pid && p.comm == "sleep"
	}, 10*time.Second, 10*time.Millisecond, "the daemon is reparented away from the shell")
	for _, pid := range []int{child, leftSession} {
		require.Eventually(t, func() bool { p, ok := readProc(pid); return ok && p.comm == "sleep" }, 10*time.Second, 10*time.Millisecond)
	}

	fam, ok := familyOf(killed.Process.Pid)
	require.True(t, ok)
	require.Equal(t, killed.Process.Pid, fam.kiln.sid, "the killed process leads its session")
	require.NoError(t, killed.Process.Signal(syscall.SIGKILL))
	require.Eventually(t, func() bool {
		p, ok := readProc(killed.Process.Pid)
		return !ok || p.state == "Z" || p.start != fam.kiln.start
	}, 10*time.Second, 10*time.Millisecond, "the shell is dead")

	var got []int
	for _, p := range fam.members() {
		if p.state != "Z" {
			got = append(got, p.pid)
		}
	}
	want := []int{daemon, child, leftSession}
	sort.Ints(got)
	sort.Ints(want)
	require.Equal(t, want, got, "the family is the killed process's three survivors, and nothing else")
	for _, pid := range []int{bystander.Process.Pid, other.Process.Pid, otherChild, os.Getpid()} {
		p, ok := readProc(pid)
		require.True(t, ok && p.state != "Z", "process %d runs beside the family", pid)
	}

	// Once they are gone, survivors finds none.
	for _, pid := range want {
		require.NoError(t, syscall.Kill(pid, syscall.SIGKILL))
	}
	require.Empty(t, fam.survivors())
}
