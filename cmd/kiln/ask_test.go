package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kiln-build/kiln/builder"
	"github.com/kiln-build/kiln/internal/testutil"
	"github.com/stretchr/testify/require"
)

// terminal is the person's side of a pty: what was printed so far, and
// what to type.
type terminal struct {
	master *os.File
	mu     sync.Mutex
	out    bytes.Buffer
	closed chan struct{} // closed when the master reads EOF or EIO: nothing more will show
}

func newTerminal(t *testing.T) (*terminal, *os.File) {
	master, slave := testutil.PTY(t)
	term := &terminal{master: master, closed: make(chan struct{})}
	go func() {
		defer close(term.closed)
		buf := make([]byte, 4096)
		for {
			n, err := master.Read(buf)
			term.mu.Lock()
			term.out.Write(buf[:n])
			term.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	return term, slave
}

// text is what the terminal shows, with the pty's \r\n line ends as \n.
func (term *terminal) text() string {
	term.mu.Lock()
	defer term.mu.Unlock()
	return strings.ReplaceAll(term.out.String(), "\r\n", "\n")
}

// expect waits until the terminal shows want n times in all.
func (term *terminal) expect(t *testing.T, want string, n int, timeout time.Duration) {
	t.Helper()
	for end := time.Now().Add(timeout); strings.Count(term.text(), want) < n; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("waited %s for %q (%d) on the terminal; it shows:\n%s", timeout, want, n, term.text())
		}
	}
}

func (term *terminal) typeLine(t *testing.T, s string) {
	t.Helper()
	_, err := term.master.WriteString(s + "\n")
	require.NoError(t, err)
}

// The question on a terminal: a wrong answer is asked again, words and
// keys are understood, choices that do not apply are not offered, and
// end of input aborts.
func TestAskOnTerminal(t *testing.T) {
	term, slave := newTerminal(t)
	ask := askOnTerminal(slave, slave)
	p := builder.Paused{Stage: "build", Err: errors.New("build step \"x\" failed (exit code 4)\nlast lines"), Attempt: 1, Tree: "/staging/tree", CanRetry: true}
	got := make(chan builder.Decision, 1)
	go func() { got <- ask(context.Background(), p) }()
	term.expect(t, "[r/s/k/a]? ", 1, 5*time.Second)
	require.Contains(t, term.text(), "kiln: stage build failed (attempt 1):\n  build step \"x\" failed (exit code 4)\n  last lines")
	require.Contains(t, term.text(), "a shell in the tree /staging/tree")
	term.typeLine(t, "maybe")
	term.expect(t, `"maybe" is not one of the answers`, 1, 5*time.Second)
	term.expect(t, "[r/s/k/a]? ", 2, 5*time.Second)
	term.typeLine(t, "Keep")
	require.Equal(t, builder.Keep, <-got)

	// A failed lint: its retry reads the tree again.
	p = builder.Paused{Stage: "lint", Err: errors.New("the image holds 1 secret(s)"), Attempt: 1, Tree: "/staging/tree", CanRetry: true}
	go func() { got <- ask(context.Background(), p) }()
	term.expect(t, "[r/s/k/a]? ", 3, 5*time.Second)
	require.Contains(t, term.text(), "r  retry  read the tree again (after removing what it found, in a shell)")
	term.typeLine(t, "r")
	require.Equal(t, builder.Retry, <-got)

	// A failed test: the disk, no retry offered here.
	p = builder.Paused{Stage: "outputs", Err: errors.New("vhd: too big"), Attempt: 1, Disk: "/staging/x.raw"}
	go func() { got <- ask(context.Background(), p) }()
	term.expect(t, "[s/k/a]? ", 1, 5*time.Second)
	require.Contains(t, term.text(), "boot the disk on this terminal, as kiln run does")
	term.typeLine(t, "r")
	term.expect(t, `"r" is not one of the answers`, 1, 5*time.Second)
	term.typeLine(t, "a")
	require.Equal(t, builder.Cleanup, <-got)

	// Ctrl-C (the context is cancelled) while asking aborts.
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		got <- ask(ctx, builder.Paused{Stage: "base", Err: errors.New("no archive"), Attempt: 2, CanRetry: true})
	}()
	term.expect(t, "[r/a]? ", 1, 5*time.Second)
	cancel()
	require.Equal(t, builder.Cleanup, <-got)
}

// asKilnEnv makes this test binary run as kiln (main_test.go), for tests
// that need a separate kiln process, on a terminal of their own.
const asKilnEnv = "KILN_TEST_BINARY_AS_KILN"

// kilnOnTerminal starts kiln with args in a process of its own whose
// controlling terminal is a new pty, and returns the terminal and a
// function that waits for kiln's exit code.
func kilnOnTerminal(t *testing.T, env []string, args ...string) (*terminal, func() int) {
	t.Helper()
	term, slave := newTerminal(t)
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(append(os.Environ(), asKilnEnv+"=1"), env...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	require.NoError(t, cmd.Start())
	slave.Close() // the child has it
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	return term, func() int {
		err := cmd.Wait()
		// What kiln wrote last may still sit in the pty: read it all (the
		// master reads EIO once every slave is closed and drained).
		select {
		case <-term.closed:
		case <-time.After(30 * time.Second):
			t.Errorf("the terminal was not drained 30s after kiln exited")
		}
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode()
		}
		require.NoError(t, err)
		return 0
	}
}
