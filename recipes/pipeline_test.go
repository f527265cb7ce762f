package recipes

import (
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestLoadPipelines(t *testing.T) {
	p, _, diags := LoadPipelines("testdata/pipelines/pipelines.hcl")
	require.False(t, diags.HasErrors(), diags.Error())
	require.Len(t, p.Pipelines, 2)
	abs, err := filepath.Abs("testdata/valid/minimal.hcl")
	require.NoError(t, err)

	n := p.Pipelines[0]
	require.Equal(t, "nightly", n.Name)
	require.Equal(t, abs, n.Recipe, "relative to the pipelines file")
	require.Equal(t, "0 3 * * *", n.Schedule.String())
	require.Equal(t, WhenInputsChanged, n.When)
	require.Equal(t, DefaultMaxFailures, n.MaxFailures)
	require.Equal(t, time.Local, n.Location)
	require.Equal(t, 2, n.Range.Line)
	require.Nil(t, n.Lifecycle)
	require.Empty(t, n.Registry)
	require.False(t, n.KVM)

	w := p.Pipelines[1]
	require.Equal(t, WhenAlways, w.When)
	require.Equal(t, 0, w.MaxFailures)
	require.Equal(t, "Europe/Berlin", w.Location.String())
	require.Equal(t, map[string]string{"suite": "trixie", "release": "2.0.0"}, w.Variables)
	vars, err := filepath.Abs("testdata/pipelines/weekly.vars.hcl")
	require.NoError(t, err)
	require.Equal(t, []string{vars}, w.VarFiles)
	require.Equal(t, "oci://registry.example:5000/images/full", w.Registry)
	require.True(t, w.ContainerDisk)
	require.False(t, w.PlainHTTP)
	require.True(t, w.KVM)
	require.NotNil(t, w.Lifecycle)
	require.Equal(t, 3, w.Lifecycle.KeepLast)
	require.Equal(t, 30*24*time.Hour, w.Lifecycle.DeprecateAfter)
	o := w.LoadOptions([]string{"KILN_VAR_x=1"})
	require.Equal(t, []string{"release=2.0.0", "suite=trixie"}, o.Vars, "sorted, as -var")
	require.Equal(t, []string{vars}, o.VarFiles)
	require.Equal(t, []string{"KILN_VAR_x=1"}, o.Env)
	// Berlin's 04:30 on Sunday 4 January 2026 is 03:30 UTC.
	next := w.Schedule.Next(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).In(w.Location))
	require.Equal(t, time.Date(2026, 1, 4, 3, 30, 0, 0, time.UTC), next.UTC())
}

// Each file in testdata/errors/pipelines carries "# ERROR: <summary>" on
// every offending line; all are reported, in one run, on those lines only.
func TestLoadPipelinesErrors(t *testing.T) {
	eachErrorFile(t, "testdata/errors/pipelines/*.hcl", 5, func(t *testing.T, file string, want map[int][]string) {
		p, files, diags := LoadPipelines(file)
		require.Nil(t, p)
		got := reportedErrors(t, file, diags)
		var b strings.Builder
		WriteDiagnostics(&b, files, diags, false)
		require.Equal(t, want, got, "diagnostics:\n%s", b.String())
		require.Contains(t, b.String(), file+":", "file:line:col")
	})
}

func TestLoadPipelinesEmptyAndMissing(t *testing.T) {
	_, _, diags := ParsePipelines("empty.hcl", []byte("# nothing\n"))
	require.True(t, diags.HasErrors())
	require.Equal(t, "No pipelines", diags[0].Summary)
	_, _, diags = LoadPipelines("testdata/no-such-file.hcl")
	require.Equal(t, "Cannot read pipelines file", diags[0].Summary)
}

// FuzzParsePipelines: the parser never panics, and what it accepts is complete.
func FuzzParsePipelines(f *testing.F) {
	addSeedFiles(f, "testdata/pipelines/*.hcl", "testdata/errors/pipelines/*.hcl")
	name := filepath.Join("testdata", "pipelines", "fuzz.hcl")
	f.Fuzz(func(t *testing.T, src []byte) {
		p, files, diags := ParsePipelines(name, src)
		for _, d := range diags {
			if d.Summary == internalErrorSummary {
				t.Fatalf("ParsePipelines panicked: %s", d.Detail)
			}
		}
		WriteDiagnostics(io.Discard, files, diags, false)
		if diags.HasErrors() {
			if p != nil {
				t.Fatal("pipelines came back with errors")
			}
			return
		}
		if p == nil || len(p.Pipelines) == 0 {
			t.Fatal("no errors but no pipelines")
		}
		for _, pl := range p.Pipelines {
			if pl.Schedule == nil || pl.Recipe == "" || pl.Location == nil || pl.MaxFailures < 0 ||
				(pl.When != WhenAlways && pl.When != WhenInputsChanged) {
				t.Fatalf("incomplete pipeline accepted: %+v", pl)
			}
		}
	})
}
