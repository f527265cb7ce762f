package main

import (
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kiln-build/kiln/catalog"
	"github.com/kiln-build/kiln/internal/sparse"
	"github.com/kiln-build/kiln/internal/testutil"
	"github.com/stretchr/testify/require"
)

// lockedBuffer collects a child process's output while a test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// kilnProcess runs this test binary as kiln (main_test.go) with env added.
func kilnProcess(env []string, args ...string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(append(os.Environ(), asKilnEnv+"=1"), env...)
	return cmd
}

const cloudInitMarker = "applied by cloud-init from the kiln seed"

// debugLoopBoot boots a published artifact once with kiln run --ssh
// --cloud-init USER-DATA and checks, over kiln ssh: that the throwaway
// key logs in as root (though the image's sshd says PermitRootLogin no)
// and as another user; that cloud-init found the NoCloud seed and applied
// its write_files; that the guest made its SSH host keys at first boot
// and that key is the one kiln's per-run known_hosts recorded, the user's
// own ~/.ssh untouched. Then the guest powers off, kiln run exits 0,
// forgets the session, and the artifact is unchanged.
func debugLoopBoot(t *testing.T, artifact string, output string) {
	testutil.Require(t, "ssh", "ssh-keygen")
	home, runtime := t.TempDir(), t.TempDir()
	env := []string{"HOME=" + home, "XDG_RUNTIME_DIR=" + runtime}
	userData := filepath.Join(t.TempDir(), "user-data")
	require.NoError(t, os.WriteFile(userData, []byte(`#cloud-config
write_files:
  - path: /etc/kiln-e2e/cloud-init
    content: "`+cloudInitMarker+`\n"
`), 0o644))
	before, err := sparse.SHA256(output)
	require.NoError(t, err)

	start := time.Now()
	run := kilnProcess(env, "run", "--ssh", "--cloud-init", userData, "--timeout", "25m", artifact)
	stdin, err := run.StdinPipe() // not a terminal: QEMU reads it as it is
	require.NoError(t, err)
	defer stdin.Close()
	var console, stderr lockedBuffer
	run.Stdout, run.Stderr = &console, &stderr
	require.NoError(t, run.Start())
	defer func() { _ = run.Process.Kill() }()
	exited := make(chan error, 1)
	go func() { exited <- run.Wait() }()
	require.Eventually(t, func() bool { return strings.Contains(stderr.String(), "kiln ssh\n") }, 2*time.Minute, time.Second,
		"kiln run prints how to get in; stderr:\n%s", stderr.String())
	require.Regexp(t, `ssh -i \S+/id_ed25519 -p \d+ -o IdentitiesOnly=yes .*StrictHostKeyChecking=accept-new .*root@127\.0\.0\.1`, stderr.String())

	sshRun := func(args ...string) (int, string, string) {
		t.Helper()
		cmd := kilnProcess(env, append([]string{"ssh"}, args...)...)
		var out, errOut strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &errOut
		err := cmd.Run()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode(), out.String(), errOut.String()
		}
		require.NoError(t, err)
		return 0, out.String(), errOut.String()
	}
	// kiln ssh waits for the guest's sshd, which comes up after cloud-init's
	// first stages under TCG.
	code, out, errOut := sshRun("--wait", "20m", "--", "id -un; cat /etc/kiln-e2e/cloud-init; cloud-init status --wait --long; "+
		"cat /etc/ssh/ssh_host_ed25519_key.pub; sshd -T | grep -E '^(permitrootlogin|allowusers) '")
	booted := time.Since(start)
	require.Equal(t, 0, code, "kiln ssh:\nstdout:\n%s\nstderr:\n%s\nkiln run stderr:\n%s\nconsole:\n%s", out, errOut, stderr.String(), console.String())
	t.Logf("kiln run --ssh --cloud-init: first command over SSH %.0fs after start", booted.Seconds())
	lines := strings.Split(out, "\n")
	require.Equal(t, "root", lines[0], "the throwaway key logs in as root")
	require.Equal(t, cloudInitMarker, lines[1], "cloud-init applied the seed's write_files")
	require.Contains(t, out, "status: done")
	require.Regexp(t, `(?m)^detail:\s*\n?\s*DataSourceNoCloud \[seed=/dev/vd`, out, "cloud-init used the NoCloud seed (the cloud-init-nocloud component's data source)")
	require.Regexp(t, `(?m)^permitrootlogin (without|prohibit)-password$`, out, "kiln's setting comes before the image's PermitRootLogin no")
	require.Contains(t, out, "allowusers deploy\nallowusers root\n", "the image's own settings still apply")
	hostKey := ""
	for _, l := range lines {
		if strings.HasPrefix(l, "ssh-ed25519 ") {
			hostKey = strings.Join(strings.Fields(l)[:2], " ")
		}
	}
	require.NotEmpty(t, hostKey, "the guest made its host keys at first boot")

	// The per-run known_hosts holds that key; the user's own was never written.
	var sessions []sshSession
	paths, _ := filepath.Glob(filepath.Join(runtime, "kiln", "run-*.json"))
	require.Len(t, paths, 1)
	data, err := os.ReadFile(paths[0])
	require.NoError(t, err)
	var s sshSession
	require.NoError(t, json.Unmarshal(data, &s))
	sessions = append(sessions, s)
	known, err := os.ReadFile(sessions[0].KnownHosts)
	require.NoError(t, err)
	require.Contains(t, string(known), hostKey)
	require.NoFileExists(t, filepath.Join(home, ".ssh", "known_hosts"))

	// The key works for other users the image admits too.
	code, out, errOut = sshRun("--user", "deploy", "--", "id -un; sudo -n id -un")
	require.Equal(t, 0, code, "stdout:\n%s\nstderr:\n%s", out, errOut)
	require.Equal(t, "deploy\nroot\n", out)

	// The guest powers off; kiln run ends with it and forgets the session.
	_, _, _ = sshRun("--", "systemctl poweroff")
	select {
	case err := <-exited:
		require.NoError(t, err, "kiln run stderr:\n%s", stderr.String())
	case <-time.After(5 * time.Minute):
		t.Fatalf("kiln run did not end after the guest powered off; console:\n%s", console.String())
	}
	t.Logf("kiln run --ssh --cloud-init: whole boot %.0fs", time.Since(start).Seconds())
	require.NoFileExists(t, paths[0])
	code, _, errOut = sshRun("--print")
	require.Equal(t, 1, code)
	require.Contains(t, errOut, "no guest started with kiln run --ssh is running")
	after, err := sparse.SHA256(output)
	require.NoError(t, err)
	require.Equal(t, before, after, "kiln run changes nothing in the artifact")
}

// --on-error=ask on a terminal: a failed build step is retried (the stage
// resumes at the failed step), a shell in the tree lets a person fix what
// the next step needs, and "keep" stops with the tree kept; "abort" stops
// and cleans up. Without a terminal, ask behaves as cleanup. No boot: the
// build fails in the build stage.
func TestE2EOnErrorAsk(t *testing.T) {
	requireE2E(t)
	recipe := bookwormRecipe(t, "asking", `
  build "shell" "flaky" { inline = ["test -e /flaky-ran && exit 0", "touch /flaky-ran", "exit 4"] }
  build "shell" "needs-a-hand" { inline = ["test -e /fixed-by-hand"] }`)
	const prompt = "[r/s/k/a]? "
	failedDirs := func(images string) []string {
		dirs, _ := filepath.Glob(filepath.Join(images, ".failed", "asking-1.0.0-*"))
		return dirs
	}
	nothingPublished := func(t *testing.T, images string) {
		builds, err := catalog.Builds(filepath.Join(images, "asking", "1.0.0"))
		require.NoError(t, err)
		require.Empty(t, builds)
		staging, _ := os.ReadDir(filepath.Join(images, ".staging"))
		require.Empty(t, staging, "no half artifact is left")
	}

	t.Run("retry-shell-keep", func(t *testing.T) {
		images := t.TempDir()
		term, wait := kilnOnTerminal(t, nil, "build", "--on-error=ask", "--images", images, "--cache", sharedCache(t), recipe)
		term.expect(t, "kiln: stage build failed (attempt 1):", 1, 15*time.Minute)
		require.Contains(t, term.text(), `build step "flaky" failed with exit code 4`)
		term.expect(t, prompt, 1, time.Minute)
		term.typeLine(t, "r")
		term.expect(t, "kiln: stage build failed (attempt 2):", 1, 5*time.Minute)
		require.Contains(t, term.text(), `build step "needs-a-hand" failed with exit code 1`, "the retry resumed at flaky, which passed")
		term.expect(t, prompt, 2, time.Minute)
		term.typeLine(t, "shell")
		term.expect(t, "(kiln: failed build)", 1, 2*time.Minute) // Debian's .bashrc shows debian_chroot
		term.expect(t, "/# ", 1, time.Minute)
		term.typeLine(t, "touch /fixed-by-hand; exit")
		term.expect(t, prompt, 3, 2*time.Minute)
		term.typeLine(t, "k")
		require.Equal(t, 1, wait(), term.text())
		dirs := failedDirs(images)
		require.Len(t, dirs, 1)
		tree := filepath.Join(dirs[0], "tree")
		require.Contains(t, term.text(), "kept the tree: "+tree)
		require.FileExists(t, filepath.Join(tree, "flaky-ran"))
		require.FileExists(t, filepath.Join(tree, "fixed-by-hand"), "what the shell changed is in the kept tree")
		log, err := os.ReadFile(filepath.Join(dirs[0], "build.log"))
		require.NoError(t, err)
		require.Equal(t, 2, strings.Count(string(log), `==> build step "flaky"`))
		require.Contains(t, string(log), "=== stage build failed (attempt 1): retry")
		require.Contains(t, string(log), "=== stage build failed (attempt 2): keep")
		nothingPublished(t, images)
	})

	t.Run("abort", func(t *testing.T) {
		images := t.TempDir()
		term, wait := kilnOnTerminal(t, nil, "build", "--on-error=ask", "--images", images, "--cache", sharedCache(t), recipe)
		term.expect(t, prompt, 1, 15*time.Minute)
		term.typeLine(t, "abort")
		require.Equal(t, 1, wait(), term.text())
		require.NotContains(t, term.text(), "kept the tree")
		dirs := failedDirs(images)
		require.Len(t, dirs, 1)
		require.FileExists(t, filepath.Join(dirs[0], "build.log"), "the logs are kept")
		require.NoDirExists(t, filepath.Join(dirs[0], "tree"))
		nothingPublished(t, images)
	})

	t.Run("no-terminal", func(t *testing.T) {
		images := t.TempDir()
		cmd := kilnProcess(nil, "build", "--on-error=ask", "--images", images, "--cache", sharedCache(t), recipe)
		cmd.Stdin = strings.NewReader("k\n") // a pipe, not a terminal: nobody is asked
		var out lockedBuffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		var ee *exec.ExitError
		require.True(t, errors.As(err, &ee), "%v: %s", err, out.String())
		require.Equal(t, 1, ee.ExitCode())
		require.Contains(t, out.String(), "--on-error=ask: no terminal to ask on; a failure is cleaned up as with --on-error=cleanup")
		require.NotContains(t, out.String(), prompt)
		dirs := failedDirs(images)
		require.Len(t, dirs, 1)
		require.NoDirExists(t, filepath.Join(dirs[0], "tree"))
		nothingPublished(t, images)
	})
}
