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
	"strings"
	"syscall"
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
	if len(c.Args) == 0 {
		return errors.New("run: empty command")
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
	err := cmd.Run()
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
