package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kiln-build/kiln/internal/cron"
	"github.com/stretchr/testify/require"
)

// A pipeline whose recipe is broken fails at every tick; after max_failures
// it is disabled, and with every pipeline disabled kiln schedule exits 1.
// Runs in process with a seconds-level schedule; no build, no root.
func TestScheduleDisablesFailingPipeline(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "broken.hcl"), []byte(`image "broken" { version = "1.0.0" }`+"\n"), 0o644))
	pipelines := filepath.Join(dir, "pipelines.hcl")
	require.NoError(t, os.WriteFile(pipelines, []byte(`
pipeline "broken" {
  recipe       = "broken.hcl"
  schedule     = "@every 1s"
  max_failures = 2
}
`), 0o644))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out, errb bytes.Buffer
	start := time.Now()
	code := cmdSchedule(ctx, []string{"--json", "--images", filepath.Join(dir, "images"), pipelines}, &out, &errb)
	require.Equal(t, exitFailed, code, "stdout:\n%s\nstderr:\n%s", out.String(), errb.String())
	require.NoError(t, ctx.Err(), "it stopped by itself")
	require.GreaterOrEqual(t, time.Since(start), 2*time.Second, "two runs, a second apart")

	events := parseEvents(t, out.String())
	var kinds []string
	for _, e := range events {
		if e["pipeline"] == "broken" {
			kinds = append(kinds, e["event"].(string))
		}
	}
	require.Equal(t, []string{"scheduled", "start", "failed", "start", "failed", "disabled"}, kinds)
	failed := eventsOf(events, "broken", "failed")
	require.Contains(t, failed[0]["detail"], "broken.hcl:1:1: Missing base block")
	require.EqualValues(t, 2, failed[1]["failures"])
	require.Contains(t, events[len(events)-1]["detail"], "every pipeline is disabled")
	require.Contains(t, errb.String(), "error: Missing base block", "the full diagnostics go to stderr")
}

func TestScheduleCheckAndErrors(t *testing.T) {
	code, out, errOut := runKiln(t, "schedule", "--check", "../../recipes/testdata/pipelines/pipelines.hcl")
	require.Equal(t, 0, code, errOut)
	require.Contains(t, out, `nightly: "0 3 * * *"`)
	require.Contains(t, out, `weekly-full: "30 4 * * sun" (time zone Europe/Berlin)`)

	code, _, errOut = runKiln(t, "schedule", "../../recipes/testdata/errors/pipelines/values.hcl")
	require.Equal(t, exitUsage, code)
	require.Contains(t, errOut, "values.hcl:3:18: error: Invalid schedule")

	code, _, errOut = runKiln(t, "schedule")
	require.Equal(t, exitUsage, code)
	require.Contains(t, errOut, "expected exactly one PIPELINES argument")
}

func parseEvents(t *testing.T, out string) []map[string]any {
	t.Helper()
	var events []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if line == "" {
			continue
		}
		var e map[string]any
		require.NoError(t, json.Unmarshal([]byte(line), &e), "not a JSON line: %q", line)
		events = append(events, e)
	}
	return events
}

func eventsOf(events []map[string]any, pipeline, kind string) []map[string]any {
	var out []map[string]any
	for _, e := range events {
		if e["pipeline"] == pipeline && e["event"] == kind {
			out = append(out, e)
		}
	}
	return out
}

// The text log is one line per event: time, pipeline, event, then details.
func TestScheduleTextLog(t *testing.T) {
	var b bytes.Buffer
	l := &scheduleLog{w: &b}
	at := time.Date(2026, 11, 23, 3, 0, 1, 0, time.UTC)
	l.line(cron.Event{Time: at, Job: "nightly-web", Kind: "ok", Run: 12, Duration: 1234 * time.Millisecond,
		Next: at.Add(24 * time.Hour), Detail: "up to date (web/2.1.0/7)"})
	l.line(cron.Event{Time: at, Job: "nightly-web", Kind: "failed", Run: 13, Duration: time.Minute, Failures: 2, Detail: "recipe: x.hcl:1:1: Missing base block"})
	require.Equal(t, "2026-11-23T03:00:01Z nightly-web ok run=12 duration=1.2s next=2026-11-24T03:00:01Z up to date (web/2.1.0/7)\n"+
		"2026-11-23T03:00:01Z nightly-web failed run=13 duration=1m0s failures=2 recipe: x.hcl:1:1: Missing base block\n", b.String())
}

// kiln schedule --check loads every pipeline's recipe with the pipeline's
// variables: a broken recipe exits 2, naming the pipeline and the problem's
// file:line:col; --json reports success and failure alike.
func TestScheduleCheckValidatesRecipes(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, []byte(content), 0o644))
		return p
	}
	write("good.hcl", `variable "suite" {
  default = "trixie"
  validation {
    condition     = contains(["bookworm", "trixie"], var.suite)
    error_message = "Kiln builds bookworm and trixie."
  }
}
image "good" {
  version = "1.0.0"
  base "debian" {
    suite = var.suite
  }
}
`)
	write("broken.hcl", "image \"broken\" {\n  version = \"1.0.0\"\n  disk {\n    size = \"2G\"\n  }\n}\n")
	pipelines := write("pipelines.hcl", `pipeline "good" {
  recipe   = "good.hcl"
  schedule = "@daily"
}

pipeline "bad-variable" {
  recipe    = "good.hcl"
  schedule  = "@daily"
  variables = { suite = "buster" }
}

pipeline "broken" {
  recipe   = "broken.hcl"
  schedule = "@hourly"
}
`)
	code, out, errOut := runKiln(t, "schedule", "--check", pipelines)
	require.Equal(t, exitUsage, code, out)
	require.Contains(t, out, "good: \"@daily\"")
	require.Contains(t, out, "recipe "+filepath.Join(dir, "good.hcl")+": valid (image good 1.0.0)")
	require.Contains(t, out, "bad-variable: recipe "+filepath.Join(dir, "good.hcl")+" is INVALID: <value for var.suite>:1:1: Invalid value for variable")
	require.Contains(t, out, "broken: recipe "+filepath.Join(dir, "broken.hcl")+" is INVALID: "+filepath.Join(dir, "broken.hcl")+":1:1: Missing base block (and 1 more error(s))")
	require.Contains(t, errOut, `kiln schedule: pipeline "broken" (`+pipelines+`:12:1): recipe `)
	require.Contains(t, errOut, filepath.Join(dir, "broken.hcl")+`:4:12: error: Invalid size`)
	require.Contains(t, errOut, "Kiln builds bookworm and trixie.")
	require.Contains(t, errOut, "2 of 3 pipelines have a broken recipe")

	code, out, _ = runKiln(t, "schedule", "--check", "--json", pipelines)
	require.Equal(t, exitUsage, code)
	var doc struct {
		Status    string
		Pipelines []checkedPipeline
	}
	require.NoError(t, json.Unmarshal([]byte(out), &doc), out)
	require.Equal(t, "invalid", doc.Status)
	require.Len(t, doc.Pipelines, 3)
	require.Equal(t, "valid", doc.Pipelines[0].Status)
	require.Equal(t, "good", doc.Pipelines[0].Image)
	require.Equal(t, "invalid", doc.Pipelines[2].Status)
	require.Equal(t, pipelines+":12:1", doc.Pipelines[2].At)
	require.Equal(t, 4, doc.Pipelines[2].Diagnostics[1].Line)

	// All valid: exit 0, status valid.
	good := write("good-only.hcl", "pipeline \"good\" {\n  recipe   = \"good.hcl\"\n  schedule = \"@daily\"\n}\n")
	code, out, _ = runKiln(t, "schedule", "--check", "--json", good)
	require.Equal(t, exitOK, code)
	require.NoError(t, json.Unmarshal([]byte(out), &doc), out)
	require.Equal(t, "valid", doc.Status)
	require.NotEmpty(t, doc.Pipelines[0].NextRun)

	// A broken pipelines file: JSON too.
	code, out, _ = runKiln(t, "schedule", "--check", "--json", "../../recipes/testdata/errors/pipelines/values.hcl")
	require.Equal(t, exitUsage, code)
	require.Contains(t, out, `"status": "invalid"`)
	require.Contains(t, out, `"summary": "Invalid schedule"`)
}
