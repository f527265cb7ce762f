package livedir

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

const childEnv = "KILN_LIVEDIR_CHILD"

// TestMain runs this test binary as a process that creates a live
// directory, says where, and waits to be killed.
func TestMain(m *testing.M) {
	if parent := os.Getenv(childEnv); parent != "" {
		d, err := Create(parent, "work-", 0)
		if err != nil {
			os.Exit(3)
		}
		os.Stdout.WriteString(d.Path + "\n")
		time.Sleep(time.Minute)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// startChild starts a process that holds a live directory under parent
// and returns it with the directory's path.
func startChild(t *testing.T, parent string) (*exec.Cmd, string) {
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), childEnv+"="+parent)
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	buf := make([]byte, 4096)
	n, err := out.Read(buf)
	require.NoError(t, err)
	return cmd, strings.TrimSpace(string(buf[:n]))
}

// A directory whose creator was SIGKILLed is swept; one held by a live
// process (this one, or another running process) is not, nor a newborn
// or a lockless one until they are older than StaleAfter. Names without
// the prefix are never touched.
func TestSweepDeadRemovesOnlyWhatNoLiveProcessHolds(t *testing.T) {
	parent := t.TempDir()
	mine, err := Create(parent, "work-", 0)
	require.NoError(t, err)
	defer mine.Remove()
	require.NoDirExists(t, filepath.Join(parent, "work-"+bornInfix), "the final name has no born- infix")

	killed, deadDir := startChild(t, parent)
	_, liveDir := startChild(t, parent)
	require.True(t, Alive(deadDir))
	require.NoError(t, killed.Process.Signal(syscall.SIGKILL))
	_ = killed.Wait()
	require.False(t, Alive(deadDir), "the kernel released the killed process's lock")
	require.FileExists(t, filepath.Join(deadDir, LockFile))

	mk := func(name string, age time.Duration, lock bool) string {
		d := filepath.Join(parent, name)
		require.NoError(t, os.Mkdir(d, 0o755))
		if lock {
			require.NoError(t, os.WriteFile(filepath.Join(d, LockFile), nil, 0o600))
		}
		at := time.Now().Add(-age)
		require.NoError(t, os.Chtimes(d, at, at))
		return d
	}
	youngBorn := mk("work-born-1", time.Minute, false)
	oldBorn := mk("work-born-2", 2*StaleAfter, false)
	youngBare := mk("work-3", time.Minute, false) // made by an older Kiln: no lock file
	oldBare := mk("work-4", 2*StaleAfter, false)
	other := mk("other-5", 2*StaleAfter, true)

	removed, err := SweepDead(parent, "work-")
	require.NoError(t, err)
	require.ElementsMatch(t, []string{deadDir, oldBorn, oldBare}, removed)
	for _, d := range []string{mine.Path, liveDir, youngBorn, youngBare, other} {
		require.DirExists(t, d)
	}
	for _, d := range removed {
		require.NoDirExists(t, d)
	}

	require.NoError(t, mine.Remove())
	require.NoError(t, mine.Remove(), "a second Remove is harmless")
	require.NoDirExists(t, mine.Path)
	removed, err = SweepDead(filepath.Join(parent, "missing"), "work-")
	require.NoError(t, err)
	require.Empty(t, removed)
}

// Two processes sweeping while a third creates directories never remove
// a directory whose creator is alive.
func TestSweepNeverTakesANewbornForDead(t *testing.T) {
	parent := t.TempDir()
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
				_, _ = SweepDead(parent, "w-")
			}
		}
	}()
	for range 200 {
		d, err := Create(parent, "w-", 0o700)
		require.NoError(t, err)
		fi, err := os.Stat(d.Path)
		require.NoError(t, err, "a sweep removed a live directory")
		require.Equal(t, os.FileMode(0o700), fi.Mode().Perm())
		require.NoError(t, os.WriteFile(filepath.Join(d.Path, "data"), []byte("x"), 0o600))
		require.NoError(t, d.Remove())
	}
	close(stop)
	<-done
}
