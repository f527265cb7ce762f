package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	krun "github.com/kiln-build/kiln/internal/run"
	"github.com/kiln-build/kiln/internal/sparse"
	"github.com/kiln-build/kiln/internal/testutil"
	"github.com/stretchr/testify/require"
)

// runtimeDir points kiln's session records at a fresh directory.
func runtimeDir(t *testing.T) string {
	d := t.TempDir()
	t.Setenv("XDG_RUNTIME_DIR", d)
	return filepath.Join(d, "kiln")
}

// session records a kiln run --ssh of pid (this test process unless
// given), as kiln run does.
func session(t *testing.T, pid int, port int) sshSession {
	t.Helper()
	start, err := processStart(pid)
	if err != nil {
		start = 1 // an ended process: any start time
	}
	dir, err := sessionsDir()
	require.NoError(t, err)
	s := sshSession{PID: pid, ProcessStart: start, Port: port, Key: "/run/k/id_ed25519", KnownHosts: "/run/k/known hosts",
		Image: "img.raw", Since: time.Now()}
	_, err = recordSession(dir, s)
	require.NoError(t, err)
	return s
}

// endedPID is the PID of a process that has exited.
func endedPID(t *testing.T) int {
	cmd := exec.Command("true")
	require.NoError(t, cmd.Run())
	return cmd.Process.Pid
}

// Entries of kiln runs that ended, or whose PID now belongs to another
// process, are ignored and removed; live ones are kept.
func TestLiveSessionsCleansStaleEntries(t *testing.T) {
	dir := runtimeDir(t)
	live := session(t, os.Getpid(), 2222)
	session(t, endedPID(t), 2223)
	recycled := session(t, os.Getppid(), 2224)
	recycled.ProcessStart++ // the PID runs, but it is not the process that recorded it
	data, _ := json.Marshal(recycled)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "run-"+strconv.Itoa(recycled.PID)+".json"), data, 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "run-1.json"), []byte("{not json"), 0o600))

	got, err := liveSessions(dir)
	require.NoError(t, err)
	require.Len(t, got, 1)
	require.Equal(t, live.Port, got[0].Port)
	left, _ := filepath.Glob(filepath.Join(dir, "run-*.json"))
	require.Equal(t, []string{filepath.Join(dir, "run-"+strconv.Itoa(os.Getpid())+".json")}, left, "stale entries are removed")
	fi, err := os.Stat(left[0])
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
}

func TestKilnSSHPicksTheRunningGuest(t *testing.T) {
	runtimeDir(t)
	code, _, errOut := runKiln(t, "ssh")
	require.Equal(t, 1, code)
	require.Contains(t, errOut, "no guest started with kiln run --ssh is running")

	session(t, endedPID(t), 2001)
	code, _, _ = runKiln(t, "ssh")
	require.Equal(t, 1, code, "an ended kiln run is not picked")

	s := session(t, os.Getpid(), 2022)
	code, out, errOut := runKiln(t, "ssh", "--print", "--user", "deploy", "--", "uname", "-a")
	require.Equal(t, 0, code, errOut)
	argv := strings.TrimSpace(out)
	require.Equal(t, krun.Quote(s.sshArgs("deploy", []string{"uname", "-a"})), argv)
	for _, want := range []string{"ssh -i /run/k/id_ed25519 -p 2022 ", "-o IdentitiesOnly=yes", `'UserKnownHostsFile="/run/k/known hosts"'`,
		"-o GlobalKnownHostsFile=/dev/null", "-o StrictHostKeyChecking=accept-new", "deploy@127.0.0.1 uname -a"} {
		require.Contains(t, argv, want)
	}

	code, _, errOut = runKiln(t, "ssh", "--pid", "1", "--print")
	require.Equal(t, 2, code)
	require.Contains(t, errOut, "no kiln run --ssh with pid 1 is running")
	require.Contains(t, errOut, "--pid "+strconv.Itoa(os.Getpid()))
}

func TestKilnSSHWithSeveralGuestsWantsPid(t *testing.T) {
	runtimeDir(t)
	session(t, os.Getpid(), 2022)
	session(t, os.Getppid(), 2023)
	code, _, errOut := runKiln(t, "ssh", "--print")
	require.Equal(t, 2, code)
	require.Contains(t, errOut, "2 guests are running: name one with --pid")
	code, out, _ := runKiln(t, "ssh", "--print", "--pid", strconv.Itoa(os.Getppid()))
	require.Equal(t, 0, code)
	require.Contains(t, out, "-p 2023 ")
}

// The sessions directory must be the user's alone: a world-writable one
// (someone else's in /tmp) is refused.
func TestSessionsDirMustBePrivate(t *testing.T) {
	dir := runtimeDir(t)
	require.NoError(t, os.MkdirAll(dir, 0o777))
	require.NoError(t, os.Chmod(dir, 0o777))
	_, err := sessionsDir()
	require.ErrorContains(t, err, "is not a private directory")
}

// diskWithRoot is a GPT disk with an ESP and an ext4 root holding files,
// as kiln test and kiln run accept it.
func diskWithRoot(t *testing.T, files map[string]string) string {
	t.Helper()
	testutil.Require(t, "sgdisk", "mke2fs")
	tree := filepath.Join(t.TempDir(), "tree")
	for _, d := range []string{"etc", "usr/sbin", "usr/bin"} {
		require.NoError(t, os.MkdirAll(filepath.Join(tree, d), 0o755))
	}
	for p, content := range files {
		require.NoError(t, os.WriteFile(filepath.Join(tree, p), []byte(content), 0o644))
	}
	p := filepath.Join(t.TempDir(), "disk.raw")
	require.NoError(t, os.WriteFile(p, nil, 0o644))
	require.NoError(t, os.Truncate(p, 64<<20))
	out, err := exec.Command("sgdisk", "-n1:2048:+16M", "-t1:EF00", "-n2:34816:0", "-t2:8304", p).CombinedOutput()
	require.NoError(t, err, string(out))
	out, err = exec.Command("mke2fs", "-t", "ext4", "-q", "-F", "-b", "4096", "-E", "offset="+strconv.Itoa(34816*512), "-d", tree, p, "8192").CombinedOutput()
	require.NoError(t, err, string(out))
	return p
}

// kiln run --ssh of an image without sshd, and --cloud-init on one without
// cloud-init, are refused before QEMU starts (exit 2), and the image and
// the session records are left as they were.
func TestRunRefusesWhatTheImageCannotDo(t *testing.T) {
	testutil.Require(t, "debugfs", "ssh-keygen", "qemu-system-x86_64")
	dir := runtimeDir(t)
	img := diskWithRoot(t, map[string]string{"usr/bin/python3": "ELF"})
	before, err := sparse.SHA256(img)
	require.NoError(t, err)

	code, _, errOut := runKiln(t, "run", "--ssh", img)
	require.Equal(t, 2, code, errOut)
	require.Contains(t, errOut, "kiln run: the image has no OpenSSH server (no /usr/sbin/sshd in its root filesystem)")
	require.NotContains(t, errOut, "booting", "QEMU never started")
	left, _ := filepath.Glob(filepath.Join(dir, "run-*.json"))
	require.Empty(t, left, "the session record is removed")

	userData := filepath.Join(t.TempDir(), "user-data")
	require.NoError(t, os.WriteFile(userData, []byte("#cloud-config\nwrite_files: []\n"), 0o644))
	code, _, errOut = runKiln(t, "run", "--cloud-init", userData, img)
	require.Equal(t, 2, code, errOut)
	require.Contains(t, errOut, "the image has no cloud-init")
	code, out, errOut := runKiln(t, "test", "--json", "--cloud-init", userData, img)
	require.Equal(t, 2, code, errOut)
	require.Contains(t, out, "the image has no cloud-init")

	after, err := sparse.SHA256(img)
	require.NoError(t, err)
	require.Equal(t, before, after)
}

func TestCloudInitUserDataIsChecked(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "user-data")
	require.NoError(t, os.WriteFile(bad, []byte("write_files:\n  - path: /x\n"), 0o644))
	code, _, errOut := runKiln(t, "run", "--cloud-init", bad, "disk.raw")
	require.Equal(t, 2, code)
	require.Contains(t, errOut, "cloud-init ignores user-data that starts with \"write_files:\"")
	code, _, errOut = runKiln(t, "test", "--cloud-init", filepath.Join(t.TempDir(), "none"), "disk.raw")
	require.Equal(t, 2, code)
	require.Contains(t, errOut, "--cloud-init: open")
	code, _, errOut = runKiln(t, "run", "--ssh-port", "2222", "disk.raw")
	require.Equal(t, 2, code)
	require.Contains(t, errOut, "--ssh-port needs --ssh")
}
