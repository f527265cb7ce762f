// Package sandbox runs commands inside an image's root tree.
//
// A command runs chrooted into the tree with fresh /proc, /sys, /dev and /run
// mounted in a private mount namespace and a new PID namespace. Nothing it
// mounts is visible on the host, and when Kiln dies for any reason (SIGKILL
// included) the kernel kills every process in the namespace and drops its
// mounts: an interrupted build leaves no stray mounts and no processes.
//
// This is done by re-executing the current binary (os.Args[0] via
// /proc/self/exe) with an environment marker; the package's init function
// turns that child into the namespace's init process. Any program that
// imports this package therefore supports sandboxing, test binaries included.
//
// It does not isolate the network (build steps may install packages) and it
// is not a security boundary against a malicious recipe: build steps are code
// the recipe author chose to run as root.
package sandbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"

	"github.com/kiln-build/kiln/internal/run"
)

const helperEnv = "KILN_SANDBOX_SPEC"

// Spec is one command to run inside a tree.
type Spec struct {
	Root string   // host path of the tree
	Args []string // command inside the tree
	Env  []string // complete environment inside the tree
	Dir  string   // working directory inside the tree; default "/"
}

func init() {
	if spec := os.Getenv(helperEnv); spec != "" {
		os.Exit(helperMain(spec))
	}
}

// DefaultEnv is the environment build steps start from.
func DefaultEnv() []string {
	return []string{
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"HOME=/root",
		"LANG=C.UTF-8",
		"LC_ALL=C.UTF-8",
		"DEBIAN_FRONTEND=noninteractive",
		"TERM=dumb",
	}
}

// Run executes s and waits for it. The command's stdout and stderr both go to out.
// A non-zero exit returns *run.Error carrying the exit code and the tail of the output.
func Run(ctx context.Context, s Spec, stdin io.Reader, out io.Writer) error {
	return RunSplit(ctx, s, stdin, out, out)
}

// RunSplit is Run with separate writers for stdout and stderr.
func RunSplit(ctx context.Context, s Spec, stdin io.Reader, stdout, stderr io.Writer) error {
	cmd, err := command(ctx, s)
	if err != nil {
		return err
	}
	cmd.Stdin = stdin
	tail := run.NewTail(16 << 10)
	if stdout == stderr {
		w := io.MultiWriter(tail, stdout)
		cmd.Stdout, cmd.Stderr = w, w
	} else {
		cmd.Stdout, cmd.Stderr = stdout, io.MultiWriter(tail, stderr)
	}
	err = cmd.Run()
	if err == nil {
		return nil
	}
	return run.Failed(ctx, "chroot "+s.Root+" "+run.Quote(s.Args), tail, err)
}

// Interactive runs s with a person's terminal as its standard streams
// (the files themselves, so programs see a terminal), for a shell in a
// tree; it returns the command's exit error, if any, as exec does.
func Interactive(ctx context.Context, s Spec, stdin, stdout, stderr *os.File) error {
	cmd, err := command(ctx, s)
	if err != nil {
		return err
	}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, stdout, stderr
	return cmd.Run()
}

// command is the re-execution of this binary that runs s as PID 1 of new
// mount and PID namespaces; it dies with Kiln.
func command(ctx context.Context, s Spec) (*exec.Cmd, error) {
	if s.Dir == "" {
		s.Dir = "/"
	}
	if fi, err := os.Stat(s.Root); err != nil || !fi.IsDir() {
		return nil, fmt.Errorf("sandbox: root %s is not a directory", s.Root)
	}
	enc, err := json.Marshal(s)
	if err != nil {
		return nil, err
	}
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, self)
	cmd.Args = []string{"kiln-sandbox"}
	cmd.Env = []string{helperEnv + "=" + string(enc)}
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags: syscall.CLONE_NEWNS | syscall.CLONE_NEWPID,
		Pdeathsig:  syscall.SIGKILL,
	}
	return cmd, nil
}

// helperMain runs as PID 1 of the new namespaces.
func helperMain(specJSON string) int {
	var s Spec
	if err := json.Unmarshal([]byte(specJSON), &s); err != nil {
		fmt.Fprintf(os.Stderr, "kiln sandbox: bad spec: %v\n", err)
		return 125
	}
	if err := setupMounts(s.Root); err != nil {
		fmt.Fprintf(os.Stderr, "kiln sandbox: %v\n", err)
		return 125
	}
	cmd := exec.Command(s.Args[0], s.Args[1:]...)
	// Look the program up inside the tree, not on the host.
	cmd.Path = s.Args[0]
	if filepath.Base(s.Args[0]) == s.Args[0] {
		cmd.Path = "/bin/" + s.Args[0]
	}
	cmd.Env = s.Env
	cmd.Dir = s.Dir
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Chroot: s.Root}
	if err := cmd.Run(); err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			if ee.Exited() {
				return ee.ExitCode()
			}
			return 128 + int(ee.Sys().(syscall.WaitStatus).Signal())
		}
		fmt.Fprintf(os.Stderr, "kiln sandbox: %v\n", err)
		return 126
	}
	return 0
}
