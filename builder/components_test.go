package builder

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kiln-build/kiln/base"
	"github.com/kiln-build/kiln/components"
	"github.com/kiln-build/kiln/internal/testutil"
	"github.com/kiln-build/kiln/manifest"
	"github.com/kiln-build/kiln/recipes"
	"github.com/stretchr/testify/require"
)

// runActions compiles steps as Build does and runs them in tree.
func runActions(t *testing.T, tree string, steps ...recipes.Step) ([]manifest.StepRecord, error, string) {
	t.Helper()
	for i := range steps {
		if steps[i].Timeout == 0 {
			steps[i].Timeout = time.Minute
		}
		if steps[i].OnFailure == "" {
			steps[i].OnFailure = recipes.Abort
		}
	}
	compiled, err := components.BuildSteps(context.Background(), steps)
	if err != nil {
		return nil, err, ""
	}
	var log bytes.Buffer
	recs, err := runSteps(context.Background(), tree, compiled, &log, nil)
	return recs, err, log.String()
}

func shellStep(name string, lines ...string) recipes.Step {
	return recipes.Step{Name: name,
		Action: recipes.Action{Kind: recipes.KindShell, Shell: &recipes.Shell{Inline: lines}}}
}

func addApplets(t *testing.T, tree string, applets ...string) {
	for _, a := range applets {
		require.NoError(t, os.Symlink("busybox", filepath.Join(tree, "bin", a)))
	}
}

// file: content lands with its mode and owner, placed by Kiln through
// fsroot: a link that climbs out of the tree is resolved inside it, and a
// link to the root (/srv -> /) fails the step without writing on the host.
func TestFileAction(t *testing.T) {
	tree := testutil.BusyboxTree(t)
	addApplets(t, tree, "chown")
	require.NoError(t, os.WriteFile(filepath.Join(tree, "etc/passwd"), []byte("root:x:0:0::/root:/bin/sh\nwww-data:x:33:33::/var/www:/bin/sh\n"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(tree, "etc/group"), []byte("root:x:0:\nwww-data:x:33:\n"), 0o644))
	require.NoError(t, os.Symlink("/", filepath.Join(tree, "srv")))
	require.NoError(t, os.Symlink("../../../../../../tmp/kiln-escape", filepath.Join(tree, "etc/escape")))
	file := func(name, dest, content string, mode uint32, owner string) recipes.Step {
		return recipes.Step{Name: name, Action: recipes.Action{Kind: recipes.KindFile,
			File: &recipes.File{Destination: dest, Content: []byte(content), Mode: mode, Owner: owner, Group: owner}}}
	}
	_, err, log := runActions(t, tree,
		file("page", "/var/www/html/index.html", "<p>hi</p>\n", 0o640, "www-data"),
		file("escape", "/etc/escape", "e", 0, ""),
		shellStep("check", "ls -ln /dev/null | grep -q '^crw-rw-rw-'"),
	)
	require.NoError(t, err, log)
	p := filepath.Join(tree, "var/www/html/index.html")
	data, err := os.ReadFile(p)
	require.NoError(t, err)
	require.Equal(t, "<p>hi</p>\n", string(data))
	fi, err := os.Stat(p)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o640), fi.Mode().Perm())
	st := fi.Sys().(*syscall.Stat_t)
	require.Equal(t, uint32(33), st.Uid, "chowned inside the tree, by the tree's own user database")
	require.Equal(t, uint32(33), st.Gid)
	_, err, log = runActions(t, tree, file("secret", "/srv/etc/kiln-secret", "s", 0o600, ""))
	require.ErrorContains(t, err, `refusing to write /srv/etc/kiln-secret in the image tree: /srv is a symlink to "/"`, log)
	require.NoFileExists(t, filepath.Join(tree, "etc/kiln-secret"))
	require.NoFileExists(t, "/etc/kiln-secret")
	require.NoFileExists(t, "/tmp/kiln-escape")
	fi, err = os.Lstat(filepath.Join(tree, "etc/escape"))
	require.NoError(t, err)
	require.True(t, fi.Mode().IsRegular(), "the symlink was replaced by the file")
}

// download: fetched on the host, checked against its sha256, placed with its
// mode; a wrong sha256 fails the step and writes nothing.
func TestDownloadAction(t *testing.T) {
	tree := testutil.BusyboxTree(t)
	body := []byte("#!/bin/sh\necho tool\n")
	sum := sha256.Sum256(body)
	hexsum := hex.EncodeToString(sum[:])
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/tool" {
			http.NotFound(w, r)
			return
		}
		_, _ = w.Write(body)
	}))
	defer srv.Close()
	local := filepath.Join(t.TempDir(), "tool")
	require.NoError(t, os.WriteFile(local, body, 0o644))
	dl := func(name, url, path, sha, dest string) recipes.Step {
		return recipes.Step{Name: name, Action: recipes.Action{Kind: recipes.KindDownload,
			Download: &recipes.Download{URL: url, Path: path, SHA256: sha, Destination: dest, Mode: 0o755}}}
	}
	_, err, log := runActions(t, tree,
		dl("http", srv.URL+"/tool", "", hexsum, "/usr/local/bin/tool"),
		dl("path", "", local, strings.ToUpper(hexsum), "/opt/tool"),
		shellStep("run", "/usr/local/bin/tool > /etc/ran"))
	require.NoError(t, err, log)
	ran, _ := os.ReadFile(filepath.Join(tree, "etc/ran"))
	require.Equal(t, "tool\n", string(ran))
	fi, err := os.Stat(filepath.Join(tree, "opt/tool"))
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o755), fi.Mode().Perm())

	_, err, _ = runActions(t, tree, dl("bad", srv.URL+"/tool", "", strings.Repeat("0", 64), "/usr/local/bin/bad"))
	require.ErrorContains(t, err, "sha256 is "+hexsum)
	require.NoFileExists(t, filepath.Join(tree, "usr/local/bin/bad"))
	_, err, _ = runActions(t, tree, dl("404", srv.URL+"/missing", "", hexsum, "/x"))
	require.ErrorContains(t, err, "404")
}

// retries: a step that fails twice passes on its third attempt; with one
// retry it fails. Each attempt has its own timeout.
func TestStepRetriesAndTimeoutPerAttempt(t *testing.T) {
	tree := testutil.BusyboxTree(t)
	flaky := shellStep("flaky",
		"n=$(cat /etc/count 2>/dev/null || echo 0)", "n=$((n+1))", "echo $n > /etc/count", "[ $n -ge 3 ]")
	flaky.Retries = 2
	recs, err, log := runActions(t, tree, flaky)
	require.NoError(t, err, log)
	require.Equal(t, 3, recs[0].Attempts)
	require.Contains(t, log, `attempt 2 failed`)

	require.NoError(t, os.Remove(filepath.Join(tree, "etc/count")))
	flaky.Retries = 1
	recs, err, _ = runActions(t, tree, flaky)
	var se *StepError
	require.True(t, errors.As(err, &se), "%v", err)
	require.Equal(t, "flaky", se.Step)
	require.Empty(t, recs)
	count, _ := os.ReadFile(filepath.Join(tree, "etc/count"))
	require.Equal(t, "2\n", string(count))

	slow := shellStep("slow", "echo x >> /etc/attempts", "sleep 30")
	slow.Timeout, slow.Retries = 300*time.Millisecond, 1
	start := time.Now()
	_, err, _ = runActions(t, tree, slow)
	require.ErrorContains(t, err, "timed out after 300ms")
	require.Less(t, time.Since(start), 20*time.Second)
	attempts, _ := os.ReadFile(filepath.Join(tree, "etc/attempts"))
	require.Equal(t, "x\nx\n", string(attempts), "both attempts ran, each cut at its timeout")
}

// on_failure = "continue": the failure is logged and recorded, the next
// steps run, and the build goes on.
func TestStepOnFailureContinue(t *testing.T) {
	tree := testutil.BusyboxTree(t)
	bad := shellStep("optional", "echo 'optional broke' >&2", "exit 7")
	bad.OnFailure = recipes.Continue
	bad.Retries = 1
	recs, err, log := runActions(t, tree, bad, shellStep("after", "echo yes > /etc/after"))
	require.NoError(t, err)
	require.Len(t, recs, 2)
	require.True(t, recs[0].Failed)
	require.Equal(t, 2, recs[0].Attempts)
	require.False(t, recs[1].Failed)
	require.FileExists(t, filepath.Join(tree, "etc/after"))
	require.Contains(t, log, "on_failure = continue")
	require.Contains(t, log, "exit code 7")
}

// debianTree copies the bookworm base the e2e tests use (apt, systemd and
// useradd are needed) from the shared test cache, bootstrapping it there
// first when no test has yet (the lock on the cache entry makes a
// concurrent e2e build wait for it instead of bootstrapping it again).
func debianTree(t *testing.T) string {
	testutil.RequireRoot(t)
	testutil.Require(t, "mmdebstrap", "unshare")
	cache := os.Getenv("KILN_TEST_CACHE")
	if cache == "" {
		cache = filepath.Join(os.TempDir(), "kiln-test-cache")
	}
	dest := filepath.Join(t.TempDir(), "tree")
	_, err := base.Prepare(context.Background(), debianBase(testImage(t, "")), dest, base.Options{CacheDir: cache})
	require.NoError(t, err)
	return dest
}

// packages, service and user, really run by apt, systemctl and useradd in a
// Debian tree; judged by reading the tree.
func TestPackagesServiceUserActions(t *testing.T) {
	tree := debianTree(t)
	key := "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKiln me@host"
	steps := []recipes.Step{
		{Name: "pkgs", Policy: recipes.Policy{Retries: 2, Timeout: 10 * time.Minute}, Action: recipes.Action{Kind: recipes.KindPackages,
			Packages: &recipes.Packages{Install: []string{"hello"}, Remove: []string{"e2fsprogs-l10n-does-not-exist"}, Update: true}}},
	}
	// Removing a package that does not exist fails: drop it, install only.
	steps[0].Action.Packages.Remove = nil
	steps = append(steps,
		recipes.Step{Name: "remove", Action: recipes.Action{Kind: recipes.KindPackages,
			Packages: &recipes.Packages{Remove: []string{"hello"}}}},
		recipes.Step{Name: "units", Action: recipes.Action{Kind: recipes.KindService,
			Service: &recipes.Service{Enable: []string{"systemd-networkd.service"}, Mask: []string{"apt-daily.timer"}, Disable: []string{"e2scrub_reap.service"}}}},
		recipes.Step{Name: "deploy", Action: recipes.Action{Kind: recipes.KindUser,
			User: &recipes.User{Name: "deploy", Groups: []string{"web", "adm"}, AuthorizedKeys: []string{key}, Sudo: true}}},
	)
	// The hello package is installed by the first step: check it in between.
	_, err, log := runActions(t, tree, steps[0])
	require.NoError(t, err, log)
	require.FileExists(t, filepath.Join(tree, "usr/bin/hello"))
	status, _ := os.ReadFile(filepath.Join(tree, "var/lib/dpkg/status"))
	require.Contains(t, string(status), "Package: hello\n")

	_, err, log = runActions(t, tree, steps[1:]...)
	require.NoError(t, err, log)
	require.NoFileExists(t, filepath.Join(tree, "usr/bin/hello"), "removed again")

	link, err := os.Readlink(filepath.Join(tree, "etc/systemd/system/apt-daily.timer"))
	require.NoError(t, err)
	require.Equal(t, "/dev/null", link, "masked")
	_, err = os.Lstat(filepath.Join(tree, "etc/systemd/system/multi-user.target.wants/systemd-networkd.service"))
	require.NoError(t, err, "enabled")
	_, err = os.Lstat(filepath.Join(tree, "etc/systemd/system/multi-user.target.wants/e2scrub_reap.service"))
	require.Error(t, err, "disabled")

	passwd, _ := os.ReadFile(filepath.Join(tree, "etc/passwd"))
	require.Regexp(t, `(?m)^deploy:x:\d+:\d+::/home/deploy:/bin/(ba)?sh$`, string(passwd))
	group, _ := os.ReadFile(filepath.Join(tree, "etc/group"))
	require.Regexp(t, `(?m)^web:x:\d+:deploy$`, string(group))
	require.Regexp(t, `(?m)^adm:x:\d+:.*deploy`, string(group))
	keys := filepath.Join(tree, "home/deploy/.ssh/authorized_keys")
	data, err := os.ReadFile(keys)
	require.NoError(t, err)
	require.Equal(t, key+"\n", string(data))
	fi, _ := os.Stat(keys)
	require.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
	require.NotZero(t, fi.Sys().(*syscall.Stat_t).Uid, "owned by deploy")
	sudo, err := os.ReadFile(filepath.Join(tree, "etc/sudoers.d/kiln-deploy"))
	require.NoError(t, err)
	require.Equal(t, "deploy ALL=(ALL:ALL) NOPASSWD: ALL\n", string(sudo))
	fi, _ = os.Stat(filepath.Join(tree, "etc/sudoers.d/kiln-deploy"))
	require.Equal(t, os.FileMode(0o440), fi.Mode().Perm())

	// Running the user step again updates instead of failing.
	_, err, log = runActions(t, tree, steps[3])
	require.NoError(t, err, log)
}

// The guest wrapper applies retries, on_failure and per-attempt timeouts
// inside the guest, and writes a file action's content there. It is run
// here with busybox's sh, as strict as the guest's dash.
func TestGuestScriptPolicy(t *testing.T) {
	tree := testutil.BusyboxTree(t)
	addApplets(t, tree, "base64", "mktemp", "timeout", "dirname", "chmod", "rm", "mkdir", "head")
	flaky := shellStep("flaky", "n=$(cat /etc/count 2>/dev/null || echo 0)", "n=$((n+1))", "echo $n > /etc/count", "[ $n -ge 3 ]")
	flaky.Retries, flaky.Timeout, flaky.OnFailure = 2, time.Minute, recipes.Abort
	tooFlaky := flaky
	tooFlaky.Name, tooFlaky.Retries = "too-flaky", 0
	cont := shellStep("continue", "exit 9")
	cont.OnFailure, cont.Timeout = recipes.Continue, time.Minute
	slow := shellStep("slow", "echo x >> /etc/slow", "sleep 30")
	slow.Timeout, slow.Retries, slow.OnFailure = time.Second, 1, recipes.Abort
	file := recipes.Step{Name: "file", Policy: recipes.Policy{Timeout: time.Minute, OnFailure: recipes.Abort},
		Action: recipes.Action{Kind: recipes.KindFile, File: &recipes.File{Destination: "/srv/www/index.html", Content: []byte("<p>\x00binary ok</p>\n"), Mode: 0o640}}}

	guest, err := components.GuestSteps(context.Background(), []recipes.Step{flaky, tooFlaky, cont, slow, file})
	require.NoError(t, err)
	require.Equal(t, 3*(time.Minute+5*time.Second)+10*time.Second, guest[0].Timeout, "the harness allows every attempt")
	run := func(s components.Step) error {
		s.Timeout = 2 * time.Minute
		_, err := runSteps(context.Background(), tree, []components.Step{s}, &bytes.Buffer{}, nil)
		return err
	}
	require.NoError(t, run(guest[0]))
	count, _ := os.ReadFile(filepath.Join(tree, "etc/count"))
	require.Equal(t, "3\n", string(count))
	require.NoError(t, os.Remove(filepath.Join(tree, "etc/count")))
	require.Error(t, run(guest[1]))
	require.NoError(t, run(guest[2]), "on_failure = continue passes")
	start := time.Now()
	err = run(guest[3])
	var se *StepError
	require.True(t, errors.As(err, &se), "%v", err)
	require.Contains(t, []int{124, 143}, se.ExitCode, "timeout's exit code (coreutils 124, busybox 143)")
	require.Less(t, time.Since(start), 25*time.Second)
	slowRuns, _ := os.ReadFile(filepath.Join(tree, "etc/slow"))
	require.Equal(t, "x\nx\n", string(slowRuns))
	require.NoError(t, run(guest[4]))
	data, _ := os.ReadFile(filepath.Join(tree, "srv/www/index.html"))
	require.Equal(t, "<p>\x00binary ok</p>\n", string(data))
	fi, _ := os.Stat(filepath.Join(tree, "srv/www/index.html"))
	require.Equal(t, os.FileMode(0o640), fi.Mode().Perm())
}
