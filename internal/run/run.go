// Package run starts every external program Kiln uses.
//
// It is the one place where subprocesses are started, so that every failure
// reads the same way: the quoted, copy-pasteable command line, the exit status
// and the tail of the program's stderr. Children are placed in their own
// process group and are sent SIGKILL if Kiln itself dies (Pdeathsig), so an
// interrupted build leaves no stray processes behind.
//
// It deliberately does not retry, interpret output or choose binaries: callers
// name the program (in a package variable tests can point elsewhere) and decide
// what its output means.
package run

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"syscall"
	"time"
)

// Cmd describes one invocation.
type Cmd struct {
	Args   []string  // program and arguments; Args[0] is looked up in PATH
	Dir    string    // working directory; empty means the current one
	Env    []string  // extra environment, appended to os.Environ()
	Stdin  io.Reader // optional
	Stdout io.Writer // optional copy of stdout (it is also captured)
	Stderr io.Writer // optional copy of stderr (it is also captured)
	// Log, when set, receives the command line before it runs and a copy of
	// both output streams (for a build log).
	Log io.Writer
}

// Error is returned when a program cannot start or exits non-zero.
type Error struct {
	Cmdline  string // shell-quoted command line
	ExitCode int    // -1 when the program did not start or was killed
	Stderr   string // the last lines of stderr
	Err      error
}

func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "command failed: %s", e.Cmdline)
	if e.ExitCode >= 0 {
		fmt.Fprintf(&b, " (exit status %d)", e.ExitCode)
	} else if e.Err != nil {
		fmt.Fprintf(&b, " (%v)", e.Err)
	}
	if s := strings.TrimSpace(e.Stderr); s != "" {
		b.WriteString("\nstderr:\n")
		for _, l := range strings.Split(s, "\n") {
			b.WriteString("  " + l + "\n")
		}
	}
	return strings.TrimRight(b.String(), "\n")
}

func (e *Error) Unwrap() error { return e.Err }

// Output runs c and returns its stdout.
func Output(ctx context.Context, c Cmd) ([]byte, error) {
	var out bytes.Buffer
	if c.Stdout != nil {
		c.Stdout = io.MultiWriter(&out, c.Stdout)
	} else {
		c.Stdout = &out
	}
	err := Run(ctx, c)
	return out.Bytes(), err
}

// Run runs c to completion. A cancelled context kills the whole process group.
func Run(ctx context.Context, c Cmd) error {
	cmd, tail, err := command(ctx, c)
	if err != nil {
		return err
	}
	return commandError(ctx, c, cmd.Run(), tail)
}

// command prepares c: its own process group, SIGKILL to the group when ctx
// is done, SIGKILL when Kiln dies, stderr's tail kept for errors.
func command(ctx context.Context, c Cmd) (*exec.Cmd, *Tail, error) {
	if len(c.Args) == 0 {
		return nil, nil, errors.New("run: empty command")
	}
	cmd := exec.CommandContext(ctx, c.Args[0], c.Args[1:]...)
	cmd.Dir = c.Dir
	if len(c.Env) > 0 {
		cmd.Env = append(os.Environ(), c.Env...)
	}
	cmd.Stdin = c.Stdin
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error {
		if cmd.Process != nil {
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		}
		return nil
	}
	tail := NewTail(8 << 10)
	var outs, errs []io.Writer
	errs = append(errs, tail)
	if c.Stdout != nil {
		outs = append(outs, c.Stdout)
	}
	if c.Stderr != nil {
		errs = append(errs, c.Stderr)
	}
	if c.Log != nil {
		fmt.Fprintf(c.Log, "+ %s\n", Quote(c.Args))
		outs = append(outs, c.Log)
		errs = append(errs, c.Log)
	}
	if len(outs) > 0 {
		cmd.Stdout = io.MultiWriter(outs...)
	}
	cmd.Stderr = io.MultiWriter(errs...)
	return cmd, tail, nil
}

// commandError turns what exec returned into an *Error (nil stays nil).
func commandError(ctx context.Context, c Cmd, err error, tail *Tail) error {
	if err == nil {
		return nil
	}
	return Failed(ctx, Quote(c.Args), tail, err)
}

// Failed makes the *Error of a command (its quoted command line) that
// failed with err: its exit code, and the last lines of its stderr from
// tail. When ctx has ended, the error is ctx's and the exit code -1.
func Failed(ctx context.Context, cmdline string, tail *Tail, err error) *Error {
	e := &Error{Cmdline: cmdline, ExitCode: -1, Stderr: tail.LastLines(20), Err: err}
	var ee *exec.ExitError
	if errors.As(err, &ee) && ee.Exited() {
		e.ExitCode = ee.ExitCode()
	}
	if ctx.Err() != nil {
		e.Err = ctx.Err()
		e.ExitCode = -1
	}
	return e
}

// Process is a program Start left running in the background.
type Process struct {
	pid  int
	done chan struct{}
	err  error
}

// Start starts c and returns once it runs. Like Run, the program gets its
// own process group, ctx being done kills the group, and the kernel kills
// the program when Kiln dies (Pdeathsig), also when Kiln is SIGKILLed.
//
// Linux sends the parent-death signal when the thread that forked the child
// exits, not the process, and Go may end threads: the goroutine that starts
// the program therefore keeps its thread locked until the program exits.
func Start(ctx context.Context, c Cmd) (*Process, error) {
	cmd, tail, err := command(ctx, c)
	if err != nil {
		return nil, err
	}
	p := &Process{done: make(chan struct{})}
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
		if err := cmd.Start(); err != nil {
			started <- commandError(ctx, c, err, tail)
			return
		}
		p.pid = cmd.Process.Pid
		started <- nil
		p.err = commandError(ctx, c, cmd.Wait(), tail)
		close(p.done)
	}()
	if err := <-started; err != nil {
		return nil, err
	}
	return p, nil
}

// Pid is the program's process ID, which is also its process group's.
func (p *Process) Pid() int { return p.pid }

// Done is closed when the program has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// Wait waits for the program to exit and returns what Run would have.
func (p *Process) Wait() error {
	<-p.done
	return p.err
}

// Stop ends the program: SIGTERM to its process group, SIGKILL after
// grace, and waits for it. The error is the program's, as Wait returns it.
func (p *Process) Stop(grace time.Duration) error {
	select {
	case <-p.done:
		return p.err
	default:
	}
	_ = syscall.Kill(-p.pid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
		_ = syscall.Kill(-p.pid, syscall.SIGKILL)
		<-p.done
	}
	return p.err
}

// Quote renders args as a command line a POSIX shell would accept.
func Quote(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		q[i] = QuoteArg(a)
	}
	return strings.Join(q, " ")
}

// QuoteArg quotes one word for a POSIX shell: as it is when it holds only
// characters no shell treats specially, else in single quotes. It is the one
// shell quoter: generated scripts and logged command lines both use it.
func QuoteArg(s string) string {
	if s == "" {
		return "''"
	}
	safe := true
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./=:,+@%", r)) {
			safe = false
			break
		}
	}
	if safe {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// Tail keeps the last bytes written to it: a command's stderr, for its
// Error.
type Tail struct {
	buf []byte
	max int
}

// NewTail keeps the last max bytes.
func NewTail(max int) *Tail { return &Tail{max: max} }

func (t *Tail) Write(p []byte) (int, error) {
	t.buf = append(t.buf, p...)
	if len(t.buf) > t.max {
		t.buf = append([]byte(nil), t.buf[len(t.buf)-t.max:]...)
	}
	return len(p), nil
}

// LastLines returns the last n lines written.
func (t *Tail) LastLines(n int) string {
	lines := strings.Split(strings.TrimRight(string(t.buf), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
