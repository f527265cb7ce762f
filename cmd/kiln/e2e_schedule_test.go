package main

import (
	"bufio"
	"bytes"
	"encoding/json"
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
)

// One real build of examples/debian-minimal.hcl with --if-changed, then:
// a second --if-changed build is skipped as up to date, and `kiln schedule`
// runs pipelines against the same catalog.
func TestE2EIfChangedAndSchedule(t *testing.T) {
	requireE2E(t)
	images, cache := t.TempDir(), sharedCache(t)
	recipe, err := filepath.Abs("../../examples/debian-minimal.hcl")
	require.NoError(t, err)

	code, out, errOut := runKiln(t, "build", "--if-changed", "--json", "--images", images, "--cache", cache, recipe)
	require.Equal(t, 0, code, "stdout:\n%s\nstderr:\n%s", out, errOut)
	var first struct{ Path, InputsDigest string }
	var res map[string]any
	require.NoError(t, json.Unmarshal([]byte(out), &res))
	require.Equal(t, "published", res["status"], "no build existed, so it is built")
	require.Contains(t, errOut, "--if-changed: no build of debian-minimal 1.0.0 is published yet; building")
	first.Path, _ = res["path"].(string)
	first.InputsDigest, _ = res["inputs_digest"].(string)
	m := readManifest(t, first.Path)
	require.Len(t, m.InputsDigest, 64)
	require.Equal(t, m.InputsDigest, first.InputsDigest)
	require.NotNil(t, m.Inputs)
	require.Equal(t, m.Base.ReleaseSHA256, m.Inputs.Base.ReleaseSHA256)
	require.Equal(t, m.Recipe.SHA256, m.Inputs.RecipeSHA256)
	require.Equal(t, m.InputsDigest, m.Inputs.Digest(), "the recorded inputs hash to the recorded digest")

	t.Run("if-changed", func(t *testing.T) {
		code, out, errOut := runKiln(t, "build", "--if-changed", "--json", "--images", images, "--cache", cache, recipe)
		require.Equal(t, 0, code, "stdout:\n%s\nstderr:\n%s", out, errOut)
		var res map[string]any
		require.NoError(t, json.Unmarshal([]byte(out), &res))
		require.Equal(t, "up-to-date", res["status"])
		require.EqualValues(t, 1, res["build"])
		require.Equal(t, first.Path, res["path"])
		require.Equal(t, first.InputsDigest, res["inputs_digest"])

		code, out, errOut = runKiln(t, "build", "--if-changed", "--images", images, "--cache", cache, recipe)
		require.Equal(t, 0, code, "stdout:\n%s\nstderr:\n%s", out, errOut)
		require.Contains(t, out, "up to date: debian-minimal/1.0.0/1")
		require.NoDirExists(t, filepath.Join(images, "debian-minimal", "1.0.0", "2"), "nothing was built")
		entries, _ := os.ReadDir(filepath.Join(images, ".staging"))
		require.Empty(t, entries)
	})

	t.Run("schedule", func(t *testing.T) { testScheduleService(t, images, cache, recipe) })
}

// testScheduleService runs the real kiln binary as a service against a
// catalog where the recipe is already built: a seconds-level pipeline with
// when = "inputs-changed" reports "up to date" twice, a pipeline with a
// broken recipe fails fast and is disabled after max_failures, and SIGTERM
// stops the service with exit code 0. Then a pipeline with when = "always"
// starts a real build, and SIGTERM in the middle of it leaves no half
// artifact and no process behind.
func testScheduleService(t *testing.T, images, cache, recipe string) {
	bin := kilnBinary(t)
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "broken.hcl"), []byte("image \"broken\" { version = \"1.0.0\" }\n"), 0o644))
	pipelines := filepath.Join(dir, "pipelines.hcl")
	require.NoError(t, os.WriteFile(pipelines, []byte(`
pipeline "minimal" {
  recipe   = "`+recipe+`"
  schedule = "@every 2s"
  when     = "inputs-changed"
}

pipeline "broken" {
  recipe       = "broken.hcl"
  schedule     = "@every 1s"
  max_failures = 3
}
`), 0o644))

	svc := startService(t, bin, "schedule", "--json", "--images", images, "--cache", cache, pipelines)
	svc.waitFor(t, 3*time.Minute, func(ev []map[string]any) bool {
		return len(eventsOf(ev, "minimal", "ok")) >= 2 && len(eventsOf(ev, "broken", "disabled")) == 1
	})
	code, events := svc.stop(t, syscall.SIGTERM)
	require.Equal(t, 0, code, "a clean exit on SIGTERM; stderr:\n%s", svc.stderr.String())

	// Runs of one pipeline never overlap: start and result alternate.
	var seq []string
	for _, e := range events {
		if e["pipeline"] == "minimal" && (e["event"] == "start" || e["event"] == "ok" || e["event"] == "failed") {
			seq = append(seq, e["event"].(string))
		}
	}
	require.GreaterOrEqual(t, len(seq), 4)
	for i, k := range seq {
		if i%2 == 0 {
			require.Equal(t, "start", k, "%v", seq)
		} else {
			require.NotEqual(t, "start", k, "%v", seq)
		}
	}
	for _, e := range eventsOf(events, "minimal", "ok")[:2] {
		require.Equal(t, "up to date (debian-minimal/1.0.0/1)", e["detail"])
	}
	require.Empty(t, eventsOf(events, "minimal", "failed"))
	failed := eventsOf(events, "broken", "failed")
	require.Len(t, failed, 3, "disabled after max_failures = 3, and never run again")
	require.Contains(t, failed[0]["detail"], "broken.hcl:1:1: Missing base block")
	require.Len(t, eventsOf(events, "broken", "start"), 3)
	require.Equal(t, "stopped by signal", events[len(events)-1]["detail"])
	require.NoDirExists(t, filepath.Join(images, "debian-minimal", "1.0.0", "2"))

	// SIGTERM during a real build: interrupted, nothing published, nothing left.
	always := filepath.Join(dir, "always.hcl")
	require.NoError(t, os.WriteFile(always, []byte(`
pipeline "rebuild" {
  recipe   = "`+recipe+`"
  schedule = "@every 1s"
  when     = "always"
}
`), 0o644))
	svc = startService(t, bin, "schedule", "--json", "--images", images, "--cache", cache, always)
	svc.waitFor(t, time.Minute, func(ev []map[string]any) bool { return len(eventsOf(ev, "rebuild", "start")) == 1 })
	time.Sleep(20 * time.Second) // into the base copy or the build steps
	code, events = svc.stop(t, syscall.SIGTERM)
	require.Equal(t, 0, code, "stderr:\n%s", svc.stderr.String())
	interrupted := eventsOf(events, "rebuild", "interrupted")
	require.Len(t, interrupted, 1, "the build was in flight: %v", events)
	t.Logf("interrupted after %.1fs: %v", interrupted[0]["duration_seconds"], interrupted[0]["detail"])
	require.Empty(t, eventsOf(events, "rebuild", "ok"))
	require.NoDirExists(t, filepath.Join(images, "debian-minimal", "1.0.0", "2"), "nothing published")
	staging, _ := os.ReadDir(filepath.Join(images, ".staging"))
	require.Empty(t, staging, "no half artifact")
	require.Empty(t, processesMentioning(t, images), "no process of the build is left")
}

type service struct {
	cmd    *exec.Cmd
	stderr bytes.Buffer
	mu     sync.Mutex
	events []map[string]any
	done   chan struct{}
}

func startService(t *testing.T, bin string, args ...string) *service {
	s := &service{cmd: exec.Command(bin, args...), done: make(chan struct{})}
	s.cmd.Stderr = &s.stderr
	stdout, err := s.cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, s.cmd.Start())
	t.Cleanup(func() { _ = s.cmd.Process.Kill() })
	go func() {
		defer close(s.done)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			var e map[string]any
			if json.Unmarshal(sc.Bytes(), &e) != nil {
				e = map[string]any{"event": "not-json", "detail": sc.Text()}
			}
			s.mu.Lock()
			s.events = append(s.events, e)
			s.mu.Unlock()
		}
	}()
	return s
}

func (s *service) snapshot() []map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]map[string]any(nil), s.events...)
}

func (s *service) waitFor(t *testing.T, limit time.Duration, ok func([]map[string]any) bool) {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		if ok(s.snapshot()) {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	_ = s.cmd.Process.Kill()
	t.Fatalf("the service did not get there in %s; events:\n%v\nstderr:\n%s", limit, s.snapshot(), s.stderr.String())
}

// stop signals the service and returns its exit code and every event.
func (s *service) stop(t *testing.T, sig syscall.Signal) (int, []map[string]any) {
	require.NoError(t, s.cmd.Process.Signal(sig))
	exited := make(chan error, 1)
	go func() { <-s.done; exited <- s.cmd.Wait() }()
	select {
	case <-exited:
	case <-time.After(2 * time.Minute):
		_ = s.cmd.Process.Kill()
		t.Fatalf("the service did not exit within 2 minutes of %v", sig)
	}
	for _, e := range s.snapshot() {
		require.NotEqual(t, "not-json", e["event"], "%v", e["detail"])
	}
	return s.cmd.ProcessState.ExitCode(), s.snapshot()
}

// processesMentioning lists running processes whose command line has s.
func processesMentioning(t *testing.T, s string) []string {
	var found []string
	entries, err := os.ReadDir("/proc")
	require.NoError(t, err)
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil || e.Name() == strconv.Itoa(os.Getpid()) {
			continue
		}
		data, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && bytes.Contains(data, []byte(s)) {
			found = append(found, e.Name()+": "+strings.ReplaceAll(string(data), "\x00", " "))
		}
	}
	return found
}
