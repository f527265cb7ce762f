package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/kiln-build/kiln/boottest"
	"github.com/kiln-build/kiln/internal/atomicfile"
	"github.com/kiln-build/kiln/internal/qemu"
	krun "github.com/kiln-build/kiln/internal/run"
)

const sshUsage = `kiln ssh [flags] [-- COMMAND [ARGS]...]

Opens an SSH session, or runs COMMAND, in a guest that kiln run --ssh
booted on this machine. kiln run records each such guest (its process, its
loopback port and its throwaway key) in the user's runtime directory
($XDG_RUNTIME_DIR/kiln, else /run/user/UID/kiln, else $TMPDIR/kiln-UID);
entries of kiln run processes that have ended are removed. With one guest
running, kiln ssh picks it; with several, name one with --pid.

kiln ssh waits (--wait) until the guest's sshd answers, then runs ssh with
the throwaway key as root (--user), with a known_hosts file of that kiln run
(the guest makes new host keys at its first boot), so your own known_hosts
is never read or written. The exit code is ssh's: the command's, or 255
when ssh fails.`

// sshSession is one running kiln run --ssh, as recorded in the runtime
// directory for kiln ssh.
type sshSession struct {
	PID int `json:"pid"`
	// ProcessStart is the process's start time (field 22 of
	// /proc/PID/stat), so a recycled PID is not taken for the kiln run.
	ProcessStart uint64    `json:"process_start"`
	Port         int       `json:"port"`
	Key          string    `json:"key"`
	KnownHosts   string    `json:"known_hosts"`
	Image        string    `json:"image"`
	Since        time.Time `json:"since"`
}

// sessionsDir is where kiln run --ssh records its guests: a private
// directory of the user's, created if needed.
func sessionsDir() (string, error) {
	uid := os.Getuid()
	base := os.Getenv("XDG_RUNTIME_DIR")
	dir := filepath.Join(base, "kiln")
	if base == "" {
		if fi, err := os.Stat(fmt.Sprintf("/run/user/%d", uid)); err == nil && fi.IsDir() {
			dir = fmt.Sprintf("/run/user/%d/kiln", uid)
		} else {
			dir = filepath.Join(os.TempDir(), fmt.Sprintf("kiln-%d", uid))
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("the runtime directory for kiln run sessions: %w", err)
	}
	fi, err := os.Lstat(dir)
	if err != nil {
		return "", err
	}
	owner := -1
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		owner = int(st.Uid)
	}
	if !fi.IsDir() || owner != uid || fi.Mode().Perm()&0o077 != 0 {
		return "", fmt.Errorf("%s is not a private directory of this user (owner %d, mode %s); remove it or set XDG_RUNTIME_DIR", dir, owner, fi.Mode().Perm())
	}
	return dir, nil
}

// processStart returns the start time of process pid, from /proc.
func processStart(pid int) (uint64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) is in parentheses and may hold spaces.
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	f := strings.Fields(string(data[i+1:]))
	if len(f) < 20 {
		return 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	return strconv.ParseUint(f[19], 10, 64) // field 22; f[0] is field 3
}

// alive says whether the session's kiln run is still running.
func (s sshSession) alive() bool {
	start, err := processStart(s.PID)
	return err == nil && start == s.ProcessStart
}

// recordSession writes s into dir and returns a function that removes it.
func recordSession(dir string, s sshSession) (func(), error) {
	data, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return nil, err
	}
	path := filepath.Join(dir, fmt.Sprintf("run-%d.json", s.PID))
	if err := atomicfile.Write(path, append(data, '\n'), 0o600); err != nil {
		return nil, err
	}
	return func() { _ = os.Remove(path) }, nil
}

// liveSessions returns the sessions recorded in dir whose kiln run is
// still running, oldest first, and removes the entries of the others.
func liveSessions(dir string) ([]sshSession, error) {
	paths, err := filepath.Glob(filepath.Join(dir, "run-*.json"))
	if err != nil {
		return nil, err
	}
	var live []sshSession
	for _, p := range paths {
		var s sshSession
		data, err := os.ReadFile(p)
		if err == nil {
			err = json.Unmarshal(data, &s)
		}
		if err != nil || !s.alive() {
			_ = os.Remove(p)
			continue
		}
		live = append(live, s)
	}
	sort.Slice(live, func(i, j int) bool { return live[i].Since.Before(live[j].Since) })
	return live, nil
}

// sshArgs is the ssh command line into the session's guest as user, then
// the command to run there, if any.
func (s sshSession) sshArgs(user string, command []string) []string {
	return append([]string{"ssh",
		"-i", s.Key,
		"-p", strconv.Itoa(s.Port),
		"-o", "IdentitiesOnly=yes",
		"-o", fmt.Sprintf("UserKnownHostsFile=%q", s.KnownHosts),
		"-o", "GlobalKnownHostsFile=/dev/null",
		"-o", "StrictHostKeyChecking=accept-new",
		"-o", "LogLevel=ERROR",
		user + "@127.0.0.1",
	}, command...)
}

// newSSHKey makes a throwaway ed25519 key pair in dir and returns the
// private key's path and the public key line.
func newSSHKey(ctx context.Context, dir, comment string) (string, []byte, error) {
	key := filepath.Join(dir, "id_ed25519")
	if err := krun.Run(ctx, krun.Cmd{Args: []string{"ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", key}}); err != nil {
		return "", nil, err
	}
	pub, err := os.ReadFile(key + ".pub")
	return key, pub, err
}

// waitForSSHD waits until the guest's sshd sends its banner on the port,
// the kiln run of s ends, or timeout passes.
func waitForSSHD(ctx context.Context, s sshSession, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(s.Port))
	for {
		if banner(addr) {
			return nil
		}
		if !s.alive() {
			return fmt.Errorf("kiln run (pid %d) has ended", s.PID)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the guest's sshd did not answer on %s within %s; see the console of kiln run (pid %d)", addr, timeout, s.PID)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

// banner says whether an SSH server greets on addr. QEMU accepts on a
// forwarded port at once, even before the guest listens, so the greeting
// is what tells.
func banner(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return false
	}
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 4)
	_, err = io.ReadFull(c, buf)
	return err == nil && string(buf) == "SSH-"
}

// execSSH replaces kiln with ssh, so the session has the terminal, the
// signals and the exit code to itself (kiln has nothing left to do).
var execSSH = func(argv []string) error {
	path, err := exec.LookPath(argv[0])
	if err != nil {
		return err
	}
	return syscall.Exec(path, argv, os.Environ())
}

func cmdSSH(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("ssh", sshUsage, stderr)
	pid := fs.Int("pid", 0, "the kiln run process to connect to (default: the only one running)")
	user := fs.String("user", "root", "the user to log in as")
	wait := fs.Duration("wait", 5*time.Minute, "how long to wait for the guest's sshd to answer")
	printOnly := fs.Bool("print", false, "print the ssh command line instead of running it")
	command, err := parseInterleaved(fs, args)
	if err != nil {
		return flagError(err)
	}
	dir, err := sessionsDir()
	if err != nil {
		fmt.Fprintf(stderr, "kiln ssh: %v\n", err)
		return exitFailed
	}
	live, err := liveSessions(dir)
	if err != nil {
		fmt.Fprintf(stderr, "kiln ssh: %v\n", err)
		return exitFailed
	}
	var s *sshSession
	for i := range live {
		if *pid == 0 || live[i].PID == *pid {
			s = &live[i]
		}
	}
	switch {
	case len(live) == 0:
		fmt.Fprintf(stderr, "kiln ssh: no guest started with kiln run --ssh is running (none recorded in %s)\n", dir)
		return exitFailed
	case s == nil:
		fmt.Fprintf(stderr, "kiln ssh: no kiln run --ssh with pid %d is running\n%s", *pid, describeSessions(live))
		return exitUsage
	case *pid == 0 && len(live) > 1:
		fmt.Fprintf(stderr, "kiln ssh: %d guests are running: name one with --pid\n%s", len(live), describeSessions(live))
		return exitUsage
	}
	argv := s.sshArgs(*user, command)
	if *printOnly {
		fmt.Fprintln(stdout, krun.Quote(argv))
		return exitOK
	}
	if err := krun.Require("ssh"); err != nil {
		fmt.Fprintf(stderr, "kiln ssh: %v\n", err)
		return exitFailed
	}
	if !banner(net.JoinHostPort("127.0.0.1", strconv.Itoa(s.Port))) {
		fmt.Fprintf(stderr, "kiln ssh: waiting for the guest's sshd on 127.0.0.1:%d (kiln run pid %d)\n", s.Port, s.PID)
		if err := waitForSSHD(ctx, *s, *wait); err != nil {
			fmt.Fprintf(stderr, "kiln ssh: %v\n", err)
			return exitFailed
		}
	}
	err = execSSH(argv)
	fmt.Fprintf(stderr, "kiln ssh: running %s: %v\n", krun.Quote(argv), err)
	return exitFailed
}

func describeSessions(live []sshSession) string {
	var b strings.Builder
	for _, s := range live {
		fmt.Fprintf(&b, "  --pid %d  %s, port %d, since %s\n", s.PID, s.Image, s.Port, s.Since.Format(time.TimeOnly))
	}
	return b.String()
}

// startSSHSession prepares kiln run --ssh: a throwaway key in scratch, a
// loopback port, and the session record kiln ssh finds; it prints the ssh
// command. The returned function removes the record.
func startSSHSession(ctx context.Context, image, scratch string, port int, stderr io.Writer) (*boottest.SSHAccess, func(), error) {
	if port == 0 {
		var err error
		if port, err = qemu.FreeLoopbackPort(); err != nil {
			return nil, nil, err
		}
	}
	key, pub, err := newSSHKey(ctx, scratch, fmt.Sprintf("kiln-run-%d", os.Getpid()))
	if err != nil {
		return nil, nil, err
	}
	start, err := processStart(os.Getpid())
	if err != nil {
		return nil, nil, err
	}
	dir, err := sessionsDir()
	if err != nil {
		return nil, nil, err
	}
	s := sshSession{PID: os.Getpid(), ProcessStart: start, Port: port, Key: key, KnownHosts: filepath.Join(scratch, "known_hosts"), Image: image, Since: time.Now()}
	forget, err := recordSession(dir, s)
	if err != nil {
		return nil, nil, err
	}
	fmt.Fprintf(stderr, "kiln: the guest's sshd will be on 127.0.0.1:%d; from another terminal, run\n  kiln ssh\nor\n  %s\n", port, krun.Quote(s.sshArgs("root", nil)))
	return &boottest.SSHAccess{AuthorizedKey: pub, HostPort: port}, forget, nil
}
