package main

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kiln-build/kiln/internal/testhook"
	"github.com/kiln-build/kiln/manifest"
)

// The kill matrix: real kiln processes (this test binary run as kiln, with
// the test hook of main_test.go) are killed with SIGKILL and SIGTERM at each
// stage of a build, and while they convert, remove, prune and schedule.
// After each kill, and after the next run of a kiln command, the kernel is
// asked (e2e_kill_probe_test.go):
//
//   - no process the killed kiln started survives (no QEMU, no swtpm, no
//     build step, no mmdebstrap): its family, the processes below it and
//     those that kept the session it was started in (e2e_kill_probe_test.go),
//     and no other process on the machine;
//   - no mount lies in them, in any mount namespace (the host's
//     /proc/self/mountinfo and every sandbox's or unshare's);
//   - the killed process left at most its own staging or temporary
//     directory (SIGKILL; nothing after SIGTERM), which the next run sweeps,
//     while a live build's staging, held by another process all along,
//     survives every sweep;
//   - the catalog lists exactly the builds it listed before (or, for rm and
//     prune, the state on one side of their commit point), and every build
//     in it passes kiln images check (sha256 of every output, manifests,
//     states, modes), and every build the matrix itself built (signed with
//     the matrix's key) passes kiln verify --key (the signed provenance,
//     each file's sha256 against it and the manifest, the SBOMs);
//   - kiln's temporary directory (TMPDIR) is empty.
//
// Each row logs where its kill landed, and proves it: the last point the
// hook reached (the build's "=== stage NAME" line), and the process seen
// running or the hook pause.
//
// Cost: the rows before the test stage use the shared bookworm base (a
// cached copy each) and cost seconds; the base-bootstrap rows start a
// bootstrap in a fresh cache and kill it within seconds. Only the
// outputs, publish and distribute rows need a build that passed its boot:
// three BIOS builds (one boot each), one row each, the signals
// alternating. They run one after another in a second catalog while the
// other rows run, so the matrix takes about as long as those three boots.
// kiln images push and pull are killed in package oci's tests, against a
// real registry (TestPushKilledLeavesNoTagOnAPartialArtifact,
// TestPullKilledPublishesNothing), and by TestE2ERegistry.
func TestE2EKillMatrix(t *testing.T) {
	requireE2E(t)
	m := newMatrix(t)
	start := time.Now()
	t.Run("rows", func(t *testing.T) {
		t.Run("after-boot", func(t *testing.T) {
			t.Parallel()
			m.afterBootRows(t)
		})
		t.Run("before-boot", func(t *testing.T) {
			t.Parallel()
			m.beforeBootRows(t)
		})
	})
	m.report(t, time.Since(start))
}

// matrix holds the directories the rows share.
type matrix struct {
	self    string
	cache   string // the shared base cache
	tmp     string // kiln's TMPDIR in the rows before the boot
	tmpPost string // and in those after it
	pre     string // the catalog of the rows before the boot
	post    string // the catalog of the rows after it
	mirror  string // post's distribute target
	fresh   string // an empty base cache: a bootstrap really runs
	conv    string // kiln convert's directory
	key     string // the signing key of the matrix's builds (KILN_SIGN_KEY)
	pub     string // and its public half, for kiln verify --key
	pin     string // when set, kiln runs on these CPUs only (taskset -c), so that runtime.NumCPU sees them

	mu   sync.Mutex
	rows []string
}

func newMatrix(t *testing.T) *matrix {
	self, err := os.Executable()
	require.NoError(t, err)
	m := &matrix{self: self, cache: sharedCache(t), tmp: t.TempDir(), tmpPost: t.TempDir(), pre: t.TempDir(), post: t.TempDir(),
		mirror: t.TempDir(), fresh: t.TempDir(), conv: t.TempDir()}
	keys := t.TempDir()
	code, _, errOut := runKiln(t, "keygen", filepath.Join(keys, "matrix"))
	require.Equal(t, 0, code, errOut)
	m.key, m.pub = filepath.Join(keys, "matrix.key"), filepath.Join(keys, "matrix.pub")
	for _, root := range []string{m.pre, m.post, m.mirror} {
		twoEarlierBuilds(t, root, "earlier")
	}
	return m
}

func (m *matrix) logRow(t *testing.T, format string, a ...any) {
	line := fmt.Sprintf(format, a...)
	t.Log(line)
	m.mu.Lock()
	m.rows = append(m.rows, line)
	m.mu.Unlock()
}

func (m *matrix) report(t *testing.T, took time.Duration) {
	t.Logf("kill matrix: %d rows in %s:\n  %s", len(m.rows), took.Round(time.Second), strings.Join(m.rows, "\n  "))
}

// recipe writes a bookworm BIOS recipe (BIOS: SeaBIOS boots faster than
// OVMF) for image name with body added.
func (m *matrix) recipe(t *testing.T, name, body string) string {
	return bookwormRecipe(t, name, `
  boot { firmware = "bios" }
  disk { size = "2GiB" }
`+body)
}

// kproc is one kiln process of the matrix.
type kproc struct {
	t       *testing.T
	cmd     *exec.Cmd
	trace   string
	paused  string
	out     lockedBuffer
	exited  chan struct{}
	started time.Time
}

// start runs kiln with args, held at pauseAt ("" for none), with kiln's
// temporary directory the matrix's.
func (m *matrix) start(t *testing.T, pauseAt string, args ...string) *kproc {
	return m.startIn(t, m.tmp, pauseAt, args...)
}

// startIn is start with kiln's temporary directory tmp. kiln starts a
// session of its own, so that what it starts is told from every other
// process on the machine after it is killed (family).
func (m *matrix) startIn(t *testing.T, tmp, pauseAt string, args ...string) *kproc {
	dir := t.TempDir()
	p := &kproc{t: t, trace: filepath.Join(dir, "trace"), paused: filepath.Join(dir, "paused"), exited: make(chan struct{}), started: time.Now()}
	p.cmd = exec.Command(m.self, args...)
	if m.pin != "" {
		p.cmd = exec.Command("taskset", append([]string{"-c", m.pin, m.self}, args...)...)
	}
	p.cmd.Env = append(os.Environ(), traceEnv+"="+p.trace, pauseAtEnv+"="+pauseAt, pausedEnv+"="+p.paused, "TMPDIR="+tmp, signKeyEnv+"="+m.key)
	p.cmd.Stdout, p.cmd.Stderr = &p.out, &p.out
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	require.NoError(t, p.cmd.Start())
	go func() { _ = p.cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() {
		select {
		case <-p.exited:
		default:
			_ = p.cmd.Process.Kill()
			<-p.exited
		}
	})
	return p
}

// waitFor polls until ok, failing if kiln exits first or limit passes.
func (p *kproc) waitFor(what string, limit time.Duration, ok func() bool) {
	p.t.Helper()
	deadline := time.After(limit)
	for !ok() {
		select {
		case <-p.exited:
			p.t.Fatalf("kiln exited before %s (%v):\n%s", what, p.cmd.ProcessState, p.out.String())
		case <-deadline:
			p.t.Fatalf("kiln did not get to %s in %s; points reached: %q\n%s", what, limit, p.points(), p.out.String())
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// waitPaused waits until the hook holds kiln at its point.
func (p *kproc) waitPaused(limit time.Duration) {
	p.waitFor("its pause point", limit, func() bool { _, err := os.Stat(p.paused); return err == nil })
}

// points are the hook points kiln reached, in order.
func (p *kproc) points() []string {
	data, _ := os.ReadFile(p.trace)
	if len(data) == 0 {
		return nil
	}
	return strings.Split(strings.TrimSpace(string(data)), "\n")
}

// stage is the build stage kiln is in: the last stage the hook saw start.
func (p *kproc) stage() string {
	stage := ""
	for _, pt := range p.points() {
		if s, ok := strings.CutPrefix(pt, testhook.Stage); ok {
			stage = s
		}
	}
	return stage
}

// child finds a process below kiln that match accepts.
func (p *kproc) child(match func(procInfo) bool) (procInfo, bool) {
	for _, c := range descendants(p.cmd.Process.Pid)[1:] {
		if match(c) {
			return c, true
		}
	}
	return procInfo{}, false
}

// waitChild waits until a process below kiln that match accepts runs.
func (p *kproc) waitChild(what string, limit time.Duration, match func(procInfo) bool) procInfo {
	p.t.Helper()
	var found procInfo
	p.waitFor(what, limit, func() bool {
		var ok bool
		found, ok = p.child(match)
		return ok
	})
	return found
}

// kill sends sig and waits for kiln to exit; it returns kiln's family (the
// processes below it just before the signal, and how to find those it
// started since) and its exit code (-1 when killed by the signal).
func (p *kproc) kill(sig syscall.Signal) (family, int) {
	p.t.Helper()
	fam, ok := familyOf(p.cmd.Process.Pid)
	require.True(p.t, ok, "kiln is running before the signal")
	require.Equal(p.t, p.cmd.Process.Pid, fam.kiln.sid, "kiln leads its own session")
	require.NoError(p.t, p.cmd.Process.Signal(sig))
	select {
	case <-p.exited:
	case <-time.After(3 * time.Minute):
		_ = p.cmd.Process.Kill()
		p.t.Fatalf("kiln did not exit within 3 minutes of %v:\n%s", sig, p.out.String())
	}
	return fam, p.cmd.ProcessState.ExitCode()
}

// stagingOf is the staging directory kiln holds (its lock is open in kiln).
func stagingOf(pid int, root string) string {
	fds, _ := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/fd")
	for _, fd := range fds {
		t, err := os.Readlink("/proc/" + strconv.Itoa(pid) + "/fd/" + fd.Name())
		if err == nil && strings.HasPrefix(t, filepath.Join(root, ".staging")+"/") && filepath.Base(t) == ".lock" {
			return filepath.Dir(t)
		}
	}
	return ""
}

// keptLogEndsIn reports whether a failed (or interrupted) build's log kept
// under <root>/.failed/ ends in stage.
func keptLogEndsIn(root, stage string) bool {
	logs, _ := filepath.Glob(filepath.Join(root, ".failed", "*", "build.log"))
	for _, l := range logs {
		if lastLogStage(l) == stage {
			return true
		}
	}
	return false
}

// lastLogStage is the last "=== stage NAME" line of a build log.
func lastLogStage(log string) string {
	data, _ := os.ReadFile(log)
	stage := ""
	for _, l := range strings.Split(string(data), "\n") {
		if s, ok := strings.CutPrefix(l, "=== stage "); ok {
			stage, _, _ = strings.Cut(s, ":")
		}
	}
	return stage
}

// clean asserts that no process the killed kiln started (fam) is running,
// and that no mount lies in dirs. Processes outside fam are not judged:
// other rows, tests and programs run beside the matrix.
func clean(t *testing.T, fam family, dirs []string) {
	t.Helper()
	left := fam.survivors()
	var emulators []procInfo
	for _, p := range left {
		if isEmulator(p) {
			emulators = append(emulators, p)
		}
	}
	require.Empty(t, emulators, "a QEMU or swtpm process of the killed kiln is left")
	require.Empty(t, left, "processes of the killed kiln survived")
	require.Empty(t, mountsIn(dirs), "mounts are left")
}

// entries lists a directory's entries (none when it is missing).
func entries(dir string) []string {
	des, _ := os.ReadDir(dir)
	var out []string
	for _, d := range des {
		out = append(out, filepath.Join(dir, d.Name()))
	}
	return out
}

// without drops keep from list.
func without(list []string, keep ...string) []string {
	var out []string
	for _, l := range list {
		if !contains(keep, l) {
			out = append(out, l)
		}
	}
	return out
}

func contains(list []string, s string) bool {
	for _, l := range list {
		if l == s {
			return true
		}
	}
	return false
}

// checkCatalog asserts the catalog lists want and passes kiln images check,
// and that every build in it with a signed provenance passes kiln verify
// --key with the matrix's key (the fake earlier builds carry none).
func (m *matrix) checkCatalog(t *testing.T, root string, want []listItem) {
	t.Helper()
	require.Equal(t, want, listJSON(t, root), "the catalog lists exactly the builds it listed before")
	code, out, errOut := runKiln(t, "images", "check", "--images", root)
	require.Equal(t, 0, code, "kiln images check:\n%s%s", out, errOut)
	for _, it := range want {
		if _, err := os.Stat(filepath.Join(it.Path, "provenance.dsse.json")); err != nil {
			continue
		}
		code, out, errOut := runKiln(t, "verify", "--key", m.pub, it.Path)
		require.Equal(t, 0, code, "kiln verify --key %s:\n%s%s", it.ID, out, errOut)
	}
}

// killBuild is one row: a kiln build (or schedule) process at its kill
// point. land says how the kill point was proven.
type killRow struct {
	name   string // what ran, where the kill landed
	sig    syscall.Signal
	stage  string // the build stage the kill must land in ("" if none)
	proven string // how the landing was seen
}

// finish signals the row's process and asserts what every build row must:
// exit code, clean processes and mounts, at most its own (dead) staging
// before the next run, none after it, the holder's staging alive, the
// catalog as before, every build checked.
func (m *matrix) finishBuild(t *testing.T, p *kproc, r killRow, root string, before []listItem, holder *kproc, holderStaging string) {
	t.Helper()
	if r.stage != "" {
		require.Equal(t, r.stage, p.stage(), "the hook saw the build in stage %s", r.stage)
	}
	own := stagingOf(p.cmd.Process.Pid, root)
	require.NotEmpty(t, own, "kiln holds a staging directory")
	if r.stage != "" {
		require.Equal(t, r.stage, lastLogStage(filepath.Join(own, "artifact", "build.log")), "the build log's last stage line")
	}
	fam, code := p.kill(r.sig)
	took := time.Since(p.started).Round(100 * time.Millisecond)
	clean(t, fam, []string{root, m.tmp, m.fresh}) // not the shared cache: other tests use it meanwhile
	left := without(entries(filepath.Join(root, ".staging")), holderStaging)
	switch r.sig {
	case syscall.SIGKILL:
		require.Equal(t, -1, code)
		require.Equal(t, []string{own}, left, "SIGKILL leaves only the killed build's staging directory")
	default:
		require.Equal(t, exitInterrupt, code, p.out.String())
		require.Contains(t, p.out.String(), "interrupted; nothing was published")
		require.Empty(t, left, "SIGTERM leaves no staging directory")
		if r.stage != "" {
			require.True(t, keptLogEndsIn(root, r.stage), "the interrupted build's log is kept in .failed/, ending in stage %s", r.stage)
		}
	}
	// The next run of a kiln command sweeps the dead staging, never a live one.
	listJSON(t, root)
	require.Empty(t, without(entries(filepath.Join(root, ".staging")), holderStaging), "the next run swept the dead staging")
	if holder != nil {
		require.DirExists(t, holderStaging, "a live build's staging survives the sweep")
	}
	require.Empty(t, entries(m.tmp), "kiln's temporary directory is empty")
	m.checkCatalog(t, root, before)
	m.logRow(t, "%-36s SIG%-5s landed in stage %-11s %s; exit %d after %s", r.name, sigName(r.sig), orDash(r.stage), r.proven, code, took)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// beforeBootRows are the rows up to a running test VM, in the catalog pre,
// while a live build (the holder, paused at its base stage) keeps its
// staging there; then the holder itself is stopped with SIGTERM.
func (m *matrix) beforeBootRows(t *testing.T) {
	plain := m.recipe(t, "matrix", "")
	steps := m.recipe(t, "matrix-steps", `
  build "shell" "hold" { inline = ["echo kiln-matrix-step", "exec sleep 3601"] }`)
	holder := m.start(t, testhook.Stage+"base", "build", "--images", m.pre, "--cache", m.cache, plain)
	holder.waitPaused(time.Minute)
	holderStaging := stagingOf(holder.cmd.Process.Pid, m.pre)
	require.NotEmpty(t, holderStaging)
	build := func(recipe string) *kproc {
		return m.start(t, "", "build", "--images", m.pre, "--cache", m.cache, recipe)
	}
	sigs := []syscall.Signal{syscall.SIGKILL, syscall.SIGTERM}

	for _, sig := range sigs {
		t.Run("base-bootstrap-"+sigName(sig), func(t *testing.T) { m.bootstrapRow(t, sig) })
	}
	for _, sig := range sigs {
		t.Run("build-step-"+sigName(sig), func(t *testing.T) {
			before := listJSON(t, m.pre)
			p := build(steps)
			// The first row on the shared cache: e2e tests run in parallel, so
			// none may have bootstrapped its bookworm base yet, and this build
			// (or another test's, holding the cache's lock) then does.
			step := p.waitChild("its build step", 20*time.Minute, func(c procInfo) bool { return c.cmdline == "sleep 3601" })
			root, _ := os.Readlink("/proc/" + strconv.Itoa(step.pid) + "/root")
			require.True(t, strings.HasPrefix(root, m.pre+"/.staging/"), "the step runs chrooted in the staged tree, not in %s", root)
			m.finishBuild(t, p, killRow{"build: step running in its sandbox", sig, "build",
				fmt.Sprintf("(step pid %d chrooted in %s)", step.pid, root)}, m.pre, before, holder, holderStaging)
		})
	}
	for _, sig := range sigs {
		t.Run("disk-"+sigName(sig), func(t *testing.T) {
			before := listJSON(t, m.pre)
			p := build(plain)
			mkfs := p.waitChild("mke2fs", 3*time.Minute, func(c procInfo) bool {
				if s := p.stage(); s == "test" || s == "outputs" || s == "publish" {
					t.Fatalf("the disk stage ended before mke2fs was seen running")
				}
				return c.comm == "mke2fs"
			})
			m.finishBuild(t, p, killRow{"build: disk being written", sig, "disk",
				fmt.Sprintf("(mke2fs pid %d running)", mkfs.pid)}, m.pre, before, holder, holderStaging)
		})
	}
	for _, sig := range sigs {
		t.Run("test-vm-"+sigName(sig), func(t *testing.T) {
			before := listJSON(t, m.pre)
			p := build(plain)
			vm := p.waitChild("a guest kernel running in QEMU", 5*time.Minute, func(c procInfo) bool {
				if !strings.HasPrefix(c.comm, "qemu-system") {
					return false
				}
				console, _ := os.ReadFile(filepath.Join(stagingOf(p.cmd.Process.Pid, m.pre), "artifact", "serial.log"))
				return bytes.Contains(console, []byte("Linux version"))
			})
			m.finishBuild(t, p, killRow{"build: test VM running", sig, "test",
				fmt.Sprintf("(QEMU pid %d, its console showing the kernel)", vm.pid)}, m.pre, before, holder, holderStaging)
		})
	}
	for _, sig := range sigs {
		t.Run("schedule-"+sigName(sig), func(t *testing.T) { m.scheduleRow(t, sig, steps, holder, holderStaging) })
	}
	for _, sig := range sigs {
		t.Run("convert-"+sigName(sig), func(t *testing.T) { m.convertRow(t, sig) })
	}
	for _, sig := range sigs {
		t.Run("images-rm-"+sigName(sig), func(t *testing.T) { m.removeRow(t, sig, holderStaging) })
		t.Run("images-prune-"+sigName(sig), func(t *testing.T) { m.pruneRow(t, sig, holderStaging) })
	}

	// The holder kept its staging through every sweep above; SIGTERM in its
	// base stage (a cached base) ends it with nothing left.
	before := listJSON(t, m.pre)
	require.DirExists(t, holderStaging)
	m.finishBuild(t, holder, killRow{"build: base (cached), held alive", syscall.SIGTERM, "base",
		"(held by the hook through every row above)"}, m.pre, before, nil, "")
}

func sigName(sig syscall.Signal) string {
	if sig == syscall.SIGKILL {
		return "KILL"
	}
	return "TERM"
}

// bootstrapRow kills a bootstrap of a fresh cache while mmdebstrap runs.
// The SIGKILL row leaves the cache's bootstrap directory, dead; the SIGTERM
// row, the next run on that cache, sweeps it before its own bootstrap, and
// removes its own when it is stopped.
func (m *matrix) bootstrapRow(t *testing.T, sig syscall.Signal) {
	root := t.TempDir()
	before := listJSON(t, root)
	recipe := m.recipe(t, "matrix-bootstrap", "")
	bases := filepath.Join(m.fresh, "bases")
	earlier := entries(bases)
	p := m.start(t, "", "build", "--images", root, "--cache", m.fresh, recipe)
	// Not just started: its tree has contents, or its namespace mounts.
	var mounts int
	deb := p.waitChild("mmdebstrap at work", 3*time.Minute, func(c procInfo) bool {
		if c.comm != "mmdebstrap" {
			return false
		}
		trees, _ := filepath.Glob(filepath.Join(bases, ".bootstrap-*", "tree", "*"))
		mounts = len(mountsIn([]string{bases}))
		return len(trees) > 2 || mounts > 0
	})
	var own []string
	for _, e := range entries(bases) {
		if strings.HasPrefix(filepath.Base(e), ".bootstrap-") && !contains(earlier, e) {
			own = append(own, e)
		}
	}
	require.Len(t, own, 1, "the bootstrap runs in its own live directory")
	for _, e := range earlier {
		if strings.HasPrefix(filepath.Base(e), ".bootstrap-") {
			require.NotContains(t, entries(bases), e, "this run swept the killed bootstrap's directory")
		}
	}
	require.Equal(t, "base", p.stage())
	fam, code := p.kill(sig)
	clean(t, fam, []string{root, m.fresh, m.tmp})
	left := []string{}
	for _, e := range entries(bases) {
		if strings.HasPrefix(filepath.Base(e), ".bootstrap-") {
			left = append(left, e)
		}
	}
	if sig == syscall.SIGKILL {
		require.Equal(t, -1, code)
		require.Equal(t, own, left, "SIGKILL leaves the bootstrap directory; the next run on this cache sweeps it")
	} else {
		require.Equal(t, exitInterrupt, code, p.out.String())
		require.Empty(t, left)
	}
	listJSON(t, root)
	require.Empty(t, entries(filepath.Join(root, ".staging")))
	require.Empty(t, entries(m.tmp), "kiln's temporary directory is empty (mmdebstrap's temporaries go to the bootstrap's directory)")
	m.checkCatalog(t, root, before)
	m.logRow(t, "%-36s SIG%-5s landed in stage %-11s %s; exit %d after %s", "build: base bootstrap (fresh cache)", sigName(sig), "base",
		fmt.Sprintf("(mmdebstrap pid %d at work, %d mounts in its namespace)", deb.pid, mounts), code, time.Since(p.started).Round(100*time.Millisecond))
}

// scheduleRow kills kiln schedule while the build it runs is in a build
// step. SIGTERM is kiln schedule's stop signal: it exits 0.
func (m *matrix) scheduleRow(t *testing.T, sig syscall.Signal, recipe string, holder *kproc, holderStaging string) {
	before := listJSON(t, m.pre)
	pipelines := filepath.Join(t.TempDir(), "pipelines.hcl")
	require.NoError(t, os.WriteFile(pipelines, []byte(`
pipeline "matrix" {
  recipe   = "`+recipe+`"
  schedule = "@every 1s"
  when     = "always"
}
`), 0o644))
	p := m.start(t, "", "schedule", "--json", "--images", m.pre, "--cache", m.cache, pipelines)
	p.waitChild("its build's step", 3*time.Minute, func(c procInfo) bool { return c.cmdline == "sleep 3601" })
	own := stagingOf(p.cmd.Process.Pid, m.pre)
	require.Equal(t, "build", lastLogStage(filepath.Join(own, "artifact", "build.log")))
	fam, code := p.kill(sig)
	clean(t, fam, []string{m.pre, m.tmp})
	left := without(entries(filepath.Join(m.pre, ".staging")), holderStaging)
	if sig == syscall.SIGKILL {
		require.Equal(t, -1, code)
		require.Equal(t, []string{own}, left)
	} else {
		require.Equal(t, 0, code, "kiln schedule exits 0 on SIGTERM:\n%s", p.out.String())
		require.Contains(t, p.out.String(), `"event":"interrupted"`)
		require.Empty(t, left)
	}
	listJSON(t, m.pre)
	require.Empty(t, without(entries(filepath.Join(m.pre, ".staging")), holderStaging))
	require.DirExists(t, holderStaging)
	m.checkCatalog(t, m.pre, before)
	m.logRow(t, "%-36s SIG%-5s landed in stage %-11s %s; exit %d after %s", "schedule: its build in a step", sigName(sig), "build",
		"(the step's sleep running)", code, time.Since(p.started).Round(100*time.Millisecond))
}

// convertRow kills kiln convert while it writes a streamOptimized VMDK
// beside where the output goes: SIGKILL leaves its .kiln-convert-*
// directory, which the next conversion into that directory sweeps; SIGTERM
// leaves nothing. No partial output is ever left.
func (m *matrix) convertRow(t *testing.T, sig syscall.Signal) {
	in := filepath.Join(t.TempDir(), "in.raw")
	f, err := os.Create(in)
	require.NoError(t, err)
	data := make([]byte, 192<<20) // incompressible: deflating it takes seconds
	_, _ = rand.Read(data)
	_, err = f.WriteAt(data, 1<<20)
	require.NoError(t, err)
	require.NoError(t, f.Truncate(1<<30))
	require.NoError(t, f.Close())
	out := filepath.Join(m.conv, "out.vmdk")
	earlier := entries(m.conv)
	p := m.start(t, "", "convert", in, "--to", "vmdk", "-o", out)
	var tmp string
	p.waitFor("the output being written", time.Minute, func() bool {
		for _, e := range entries(m.conv) {
			if strings.HasPrefix(filepath.Base(e), convertTempPrefix) && !contains(earlier, e) {
				if fi, err := os.Stat(filepath.Join(e, "output")); err == nil && fi.Size() > 1<<20 {
					tmp = e
					return true
				}
			}
		}
		return false
	})
	for _, e := range earlier {
		require.NotContains(t, entries(m.conv), e, "this run swept the killed conversion's directory")
	}
	fam, code := p.kill(sig)
	clean(t, fam, []string{m.conv, m.tmp})
	require.NoFileExists(t, out, "no partial output")
	if sig == syscall.SIGKILL {
		require.Equal(t, -1, code)
		require.Equal(t, []string{tmp}, entries(m.conv), "SIGKILL leaves the temporary directory, for the next run to sweep")
	} else {
		require.Equal(t, exitInterrupt, code, p.out.String())
		require.Empty(t, entries(m.conv))
	}
	m.logRow(t, "%-36s SIG%-5s landed in %-17s %s; exit %d after %s", "convert: raw to streamOptimized", sigName(sig), "the writing",
		"(its temporary output growing)", code, time.Since(p.started).Round(100*time.Millisecond))
}

// removeRow kills kiln images rm after its commit point (the build renamed
// out of the catalog, its data not yet deleted): the build is gone from
// the listing either way, and its data is swept by the next run.
func (m *matrix) removeRow(t *testing.T, sig syscall.Signal, holderStaging string) {
	fakeBuild(t, m.pre, "victim", "1.0.0", time.Now().UTC().Truncate(time.Second), manifest.Catalog{})
	before := listJSON(t, m.pre)
	victim := before[len(before)-1]
	require.Equal(t, "victim", victim.Name)
	p := m.start(t, testhook.RemoveRenamed, "images", "rm", "--images", m.pre, fmt.Sprintf("%s@%s/%d", victim.Name, victim.Version, victim.Build))
	p.waitPaused(time.Minute)
	trash := entries(filepath.Join(m.pre, ".trash"))
	require.Len(t, trash, 1, "the build is in .trash")
	fam, code := p.kill(sig)
	clean(t, fam, []string{m.pre, m.tmp})
	if sig == syscall.SIGKILL {
		require.Equal(t, -1, code)
		require.Equal(t, trash, entries(filepath.Join(m.pre, ".trash")))
	} else {
		require.Equal(t, 0, code, "the removal's one step was done: SIGTERM lets its deletion finish\n%s", p.out.String())
		require.Empty(t, entries(filepath.Join(m.pre, ".trash")))
	}
	listJSON(t, m.pre)
	require.Empty(t, entries(filepath.Join(m.pre, ".trash")), "the next run swept .trash")
	require.DirExists(t, holderStaging)
	m.checkCatalog(t, m.pre, before[:len(before)-1])
	m.logRow(t, "%-36s SIG%-5s landed in %-17s %s; exit %d", "images rm", sigName(sig), "its commit point", "(hook: renamed to .trash, not deleted)", code)
}

// pruneRow kills kiln images prune between its two deletions: the first
// is done, the second not; the next prune does it.
func (m *matrix) pruneRow(t *testing.T, sig syscall.Signal, holderStaging string) {
	keep1 := manifest.Catalog{Lifecycle: &manifest.Lifecycle{KeepLast: 1}}
	now := time.Now().UTC().Truncate(time.Second)
	var ids []string // oldest first
	for i := range 3 {
		n := fakeBuild(t, m.pre, "pruned", "1.0.0", now.Add(time.Duration(i-3)*time.Hour), keep1)
		ids = append(ids, fmt.Sprintf("pruned/1.0.0/%d", n))
	}
	before := listJSON(t, m.pre)
	drop := func(items []listItem, id string) []listItem {
		var out []listItem
		for _, it := range items {
			if it.ID != id {
				out = append(out, it)
			}
		}
		return out
	}
	p := m.start(t, testhook.PruneActionDone, "images", "prune", "--images", m.pre)
	p.waitPaused(time.Minute)
	fam, code := p.kill(sig)
	clean(t, fam, []string{m.pre, m.tmp})
	if sig == syscall.SIGKILL {
		require.Equal(t, -1, code)
	} else {
		require.Equal(t, exitInterrupt, code, p.out.String())
		require.Contains(t, p.out.String(), "delete "+ids[1], "it printed the deletion it did")
	}
	require.DirExists(t, holderStaging)
	// Newest first: the second-newest build was deleted, the oldest not yet.
	after := drop(before, ids[1])
	m.checkCatalog(t, m.pre, after)
	next, out, errOut := runKiln(t, "images", "prune", "--images", m.pre)
	require.Equal(t, 0, next, errOut)
	require.True(t, strings.HasPrefix(out, "delete "+ids[0]+" "), out)
	m.checkCatalog(t, m.pre, drop(after, ids[0]))
	next, _, errOut = runKiln(t, "images", "rm", "--images", m.pre, strings.Replace(ids[2], "/", "@", 1))
	require.Equal(t, 0, next, errOut)
	m.logRow(t, "%-36s SIG%-5s landed in %-17s %s; exit %d", "images prune", sigName(sig), "between deletions", "(hook: first deletion done)", code)
}

// afterBootRows are the rows that need a build that gets past its disk:
// one BIOS build per row, killed with an output written while its test VM
// runs, in its publish window, and while it is copied to its distribute
// target.
func (m *matrix) afterBootRows(t *testing.T) {
	recipe := m.recipe(t, "matrix-post", `
  output { formats = ["raw", "qcow2"] }
  distribute "mirror" { images = "`+m.mirror+`" }`)
	for _, r := range []struct {
		name, pause, stage string
		sig                syscall.Signal
		// also is another stage the kill may land in: the outputs are
		// written while the test VM runs, and are waited for after it
		also string
	}{
		{"outputs: one written, test VM up", testhook.OutputWritten + "qcow2", "test", syscall.SIGKILL, "outputs"},
		{"publish: inside its window", testhook.PublishWindow, "publish", syscall.SIGTERM, ""},
		{"distribute: copy staged", testhook.DistributeWindow, "distribute", syscall.SIGKILL, ""},
	} {
		sub := r.stage
		if r.also != "" {
			sub = r.also
		}
		t.Run(sub+"-"+sigName(r.sig), func(t *testing.T) {
			before, mirrorBefore := listJSON(t, m.post), listJSON(t, m.mirror)
			p := m.startIn(t, m.tmpPost, r.pause, "build", "--images", m.post, "--cache", m.cache, recipe)
			p.waitPaused(20 * time.Minute)
			if r.also != "" && p.stage() == r.also {
				r.stage = r.also
			}
			require.Equal(t, r.stage, p.stage(), "points reached: %q", p.points())
			own := stagingOf(p.cmd.Process.Pid, m.post)
			require.NotEmpty(t, own)
			log := filepath.Join(own, "artifact", "build.log")
			var copyStaged string
			if r.stage == "distribute" { // published; its copy staged in the mirror
				builds, _ := filepath.Glob(filepath.Join(m.post, "matrix-post", "1.0.0", "*", "build.log"))
				require.Len(t, builds, 1, "the build is published")
				log = builds[0]
				copyStaged = stagingOf(p.cmd.Process.Pid, m.mirror)
				require.NotEmpty(t, copyStaged, "the copy is staged in the mirror")
				require.FileExists(t, filepath.Join(copyStaged, "artifact", "matrix-post.raw.zst"))
			}
			require.Equal(t, r.stage, lastLogStage(log))
			fam, code := p.kill(r.sig)
			clean(t, fam, []string{m.post, m.mirror, m.tmpPost})
			if r.sig == syscall.SIGKILL {
				require.Equal(t, -1, code)
				require.Equal(t, []string{own}, entries(filepath.Join(m.post, ".staging")))
				if copyStaged != "" {
					require.Equal(t, []string{copyStaged}, entries(filepath.Join(m.mirror, ".staging")))
				}
			} else {
				require.Equal(t, exitInterrupt, code, p.out.String())
				require.Contains(t, p.out.String(), "interrupted; nothing was published")
				require.Empty(t, entries(filepath.Join(m.post, ".staging")))
				require.True(t, keptLogEndsIn(m.post, r.stage), "the interrupted build's log is kept in .failed/")
			}
			listJSON(t, m.post)
			listJSON(t, m.mirror)
			for _, root := range []string{m.post, m.mirror} {
				require.Empty(t, entries(filepath.Join(root, ".staging")), "the next run swept %s", root)
			}
			require.Empty(t, entries(m.tmpPost))
			if r.stage == "distribute" {
				after := listJSON(t, m.post)
				require.Len(t, after, len(before)+1, "the build was published before its copy was killed")
				require.Equal(t, before, after[:len(before)], "the earlier builds are as they were")
				require.FileExists(t, filepath.Join(after[len(before)].Path, "provenance.dsse.json"), "signed, so checkCatalog verifies it with the key")
				m.checkCatalog(t, m.post, after)
			} else {
				m.checkCatalog(t, m.post, before)
			}
			m.checkCatalog(t, m.mirror, mirrorBefore)
			m.logRow(t, "%-36s SIG%-5s landed in stage %-11s %s; exit %d after %s", "build: "+r.name, sigName(r.sig), r.stage,
				"(hook: "+r.pause+")", code, time.Since(p.started).Round(100*time.Millisecond))
		})
	}
	// The killed publish window consumed no build number: the next build to
	// publish takes the next one after the earlier builds and the distributed one.
	n := fakeBuild(t, m.post, "matrix-post", "1.0.0", time.Now().UTC().Truncate(time.Second), manifest.Catalog{})
	require.Equal(t, 2, n, "build 1 was published by the distribute row; the killed ones took no number")
}
