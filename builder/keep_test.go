package builder

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/kiln-build/kiln/internal/progress"
	"github.com/kiln-build/kiln/recipes"
	"github.com/stretchr/testify/require"
)

func TestKeepForDebugging(t *testing.T) {
	staging, failed := t.TempDir(), filepath.Join(t.TempDir(), ".failed", "x-1.0.0-T")
	tree, raw := filepath.Join(staging, "tree"), filepath.Join(staging, "x.raw")
	require.NoError(t, os.MkdirAll(filepath.Join(tree, "etc"), 0o755))
	msg := keepForDebugging(failed, tree, raw)
	require.Contains(t, msg, "chroot "+filepath.Join(failed, "tree")+" /bin/bash")
	require.DirExists(t, filepath.Join(failed, "tree", "etc"))
	require.NoDirExists(t, tree)

	failed2 := failed + "2"
	require.NoError(t, os.WriteFile(raw, []byte("disk"), 0o644))
	msg = keepForDebugging(failed2, tree, raw)
	require.Contains(t, msg, "kiln run "+filepath.Join(failed2, "disk.raw"))
	require.FileExists(t, filepath.Join(failed2, "disk.raw"))
	require.Empty(t, keepForDebugging(failed+"3", tree, raw), "nothing left to keep")
}

// With OnErrorAsk, a failed stage is put to Ask before anything is cleaned
// up: Retry runs a retryable stage again, Keep and Cleanup end it, and a
// stage without a retry hook is never run twice.
func TestRunStageAsks(t *testing.T) {
	dir := t.TempDir()
	s := &state{tree: filepath.Join(dir, "tree"), raw: filepath.Join(dir, "x.raw"), log: io.Discard}
	var lines progress.Plain
	var shown bytes.Buffer
	lines.W = &shown
	require.NoError(t, os.MkdirAll(s.tree, 0o755))
	var asked []Paused
	answers := []Decision{Retry, Retry, Keep}
	s.opts = Options{OnError: OnErrorAsk, Progress: &lines, Ask: func(_ context.Context, p Paused) Decision {
		asked = append(asked, p)
		d := answers[0]
		answers = answers[1:]
		return d
	}}
	runs, retries := 0, 0
	flaky := stage{name: "build", run: func(context.Context, *state) (string, error) {
		runs++
		if runs < 3 {
			return "", fmt.Errorf("attempt %d failed", runs)
		}
		return "ok", nil
	}, retry: func(*state) error { retries++; return nil }}
	note, end, err := s.runStage(context.Background(), flaky, "steps")
	require.NoError(t, err)
	require.Equal(t, "ok", note)
	end(note)
	// Each attempt has its own progress line, ended before Ask was asked.
	require.Regexp(t, `^\[build\] steps\n\[build\] done in \S+ \(failed\)\n\[build\] steps \(again\)\n\[build\] done in \S+ \(failed\)\n\[build\] steps \(again\)\n\[build\] done in \S+ \(ok\)\n$`, shown.String())
	require.Equal(t, 3, runs)
	require.Equal(t, 2, retries)
	require.Len(t, asked, 2)
	require.Equal(t, Paused{Stage: "build", Err: asked[0].Err, Attempt: 1, Tree: s.tree, CanRetry: true}, asked[0])
	require.EqualError(t, asked[1].Err, "attempt 2 failed")
	require.Equal(t, 2, asked[1].Attempt)

	// Keep ends the stage with its error and marks the build to keep.
	failing := stage{name: "build", run: func(context.Context, *state) (string, error) { return "", errors.New("broken") }, retry: flaky.retry}
	_, _, err = s.runStage(context.Background(), failing, "steps")
	require.EqualError(t, err, "broken")
	require.True(t, s.keep)

	// A stage that cannot run again is not retried, whatever Ask says.
	s.keep = false
	answers = []Decision{Retry}
	runs = 0
	once := stage{name: "disk", run: func(context.Context, *state) (string, error) { runs++; return "", errors.New("disk full") }}
	require.NoError(t, os.WriteFile(s.raw, nil, 0o644))
	_, _, err = s.runStage(context.Background(), once, "disk")
	require.EqualError(t, err, "disk full")
	require.Equal(t, 1, runs)
	require.False(t, asked[len(asked)-1].CanRetry)
	require.Equal(t, s.raw, asked[len(asked)-1].Disk)
	require.False(t, s.keep)

	// The question shows the error with the recipe's sensitive values hidden.
	s.redactor = newRedactor(&recipes.Recipe{Variables: map[string]any{"token": "tok-0123456789"}, Sensitive: map[string]bool{"token": true}})
	answers = []Decision{Cleanup}
	leaky := stage{name: "build", run: func(context.Context, *state) (string, error) {
		return "", errors.New("curl -H 'Authorization: tok-0123456789' failed")
	}, retry: flaky.retry}
	_, _, err = s.runStage(context.Background(), leaky, "steps")
	require.Error(t, err)
	require.EqualError(t, asked[len(asked)-1].Err, "curl -H 'Authorization: (sensitive)' failed")

	// Without ask, Ask is never called.
	s.opts.OnError = OnErrorKeep
	n := len(asked)
	_, _, err = s.runStage(context.Background(), failing, "steps")
	require.Error(t, err)
	require.Len(t, asked, n)
}

// The stages that may run again after a failure are the ones whose retry
// is sound: base (bootstrap again), build (resumes at the failed step),
// lint (reads the tree again) and test (boot again).
func TestRetryableStages(t *testing.T) {
	var names []string
	for _, st := range stages {
		if st.retry != nil {
			names = append(names, st.name)
		}
	}
	require.Equal(t, []string{"base", "build", "lint", "test"}, names)
}
