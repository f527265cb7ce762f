package recipes

import (
	"io"
	"os"
	"path/filepath"
	"testing"
)

// parseSeedGlobs are FuzzParse's seed corpus.
var parseSeedGlobs = []string{"testdata/valid/*.hcl", "testdata/errors/*.hcl", "testdata/vars/*.hcl", "../examples/*.hcl"}

// FuzzParse: Parse never panics (Parse turns a panic into an "Internal
// error" diagnostic, which fails here), rendering its diagnostics never
// panics, and a recipe without errors is complete.
func FuzzParse(f *testing.F) {
	addSeedFiles(f, parseSeedGlobs...)
	// Parsed as if it were in testdata/valid, so scripts/setup.sh exists.
	name := filepath.Join("testdata", "valid", "fuzz.hcl")
	f.Fuzz(func(t *testing.T, src []byte) {
		r, files, diags := Parse(name, src, LoadOptions{Library: testLibrary, Vars: []string{"release=1.0.0"}})
		for _, d := range diags {
			if d.Summary == internalErrorSummary {
				t.Fatalf("Parse panicked: %s", d.Detail)
			}
			if d.Summary == "" {
				t.Fatalf("diagnostic without a summary: %+v", d)
			}
		}
		WriteDiagnostics(io.Discard, files, diags, true)
		DiagnosticsJSON(diags)
		if diags.HasErrors() {
			if r != nil {
				t.Fatal("a recipe came back with errors")
			}
			return
		}
		if r == nil {
			t.Fatal("no errors but no recipe")
		}
		img := r.Image
		if img.Name == "" || !imageNameRE.MatchString(img.Name) || !semverRE.MatchString(img.Version) {
			t.Fatalf("invalid image accepted: %q %q", img.Name, img.Version)
		}
		if img.Base.Suite == "" || img.Disk.Size < MinDiskSize || len(img.Output.Formats) == 0 {
			t.Fatalf("incomplete image accepted: %+v", img)
		}
		for _, s := range append(append([]Step{}, img.Build...), img.Tests...) {
			if sh := s.Action.Shell; s.Timeout <= 0 || (s.Action.Kind == KindShell) != (sh != nil) || (sh != nil && (len(sh.Inline) == 0) == (sh.Script == "")) {
				t.Fatalf("invalid step accepted: %+v", s)
			}
		}
	})
}

// FuzzFormat: Format never panics, and what it returns parses and is a
// fixed point (formatting it again changes nothing).
func FuzzFormat(f *testing.F) {
	addSeedFiles(f, append(parseSeedGlobs, "../components/library/*.hcl")...)
	f.Fuzz(func(t *testing.T, src []byte) {
		out, files, diags := Format("fuzz.hcl", src)
		WriteDiagnostics(io.Discard, files, diags, false)
		if diags.HasErrors() {
			if out != nil {
				t.Fatal("output with errors")
			}
			return
		}
		again, _, diags := Format("fuzz.hcl", out)
		if diags.HasErrors() {
			t.Fatalf("the formatted file does not parse: %s\n%q", diags, out)
		}
		if string(again) != string(out) {
			t.Fatalf("formatting is not a fixed point:\n%q\n%q", out, again)
		}
	})
}

// seedFiles reads every file the globs match, in order.
func seedFiles(tb testing.TB, globs ...string) [][]byte {
	tb.Helper()
	var out [][]byte
	for _, glob := range globs {
		files, err := filepath.Glob(glob)
		if err != nil {
			tb.Fatal(err)
		}
		for _, file := range files {
			src, err := os.ReadFile(file)
			if err != nil {
				tb.Fatal(err)
			}
			out = append(out, src)
		}
	}
	return out
}

// addSeedFiles adds every file the globs match to the fuzz corpus.
func addSeedFiles(f *testing.F, globs ...string) {
	for _, src := range seedFiles(f, globs...) {
		f.Add(src)
	}
}
