package recipes

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/stretchr/testify/require"
)

// markerRE finds the "# ERROR: <summary>" annotations in testdata/errors;
// a line may carry several.
var markerRE = regexp.MustCompile(`#\s*ERROR:\s*([^#]*[^#\s])`)

// expectedErrors maps each annotated line of src to its summaries, sorted.
func expectedErrors(t *testing.T, src []byte) map[int][]string {
	t.Helper()
	want := map[int][]string{}
	sc := bufio.NewScanner(bytes.NewReader(src))
	for line := 1; sc.Scan(); line++ {
		for _, m := range markerRE.FindAllStringSubmatch(sc.Text(), -1) {
			want[line] = append(want[line], strings.TrimSpace(m[1]))
		}
	}
	require.NoError(t, sc.Err())
	for _, s := range want {
		sort.Strings(s)
	}
	return want
}

// reportedErrors maps each line the file's diagnostics point at to their
// summaries, sorted. Every diagnostic must be an error about this file,
// with a subject.
func reportedErrors(t *testing.T, file string, diags hcl.Diagnostics) map[int][]string {
	t.Helper()
	got := map[int][]string{}
	for _, d := range diags {
		require.Equal(t, hcl.DiagError, d.Severity, "%s: %s", d.Summary, d.Detail)
		require.NotNil(t, d.Subject, "%s has no subject", d.Summary)
		require.Equal(t, file, d.Subject.Filename, "%s", d.Summary)
		require.NotEmpty(t, d.Detail, "%s has no detail", d.Summary)
		got[d.Subject.Start.Line] = append(got[d.Subject.Start.Line], d.Summary)
	}
	for _, s := range got {
		sort.Strings(s)
	}
	return got
}

// Each file in testdata/errors has one kind of mistake (or a few related
// ones); every offending line carries "# ERROR: <summary>". All of them must
// be reported, in one run, on exactly those lines, and nothing else.
func TestLoadErrors(t *testing.T) {
	eachErrorFile(t, "testdata/errors/*.hcl", 25, func(t *testing.T, file string, want map[int][]string) {
		r, _, diags := Load(file, LoadOptions{Library: testLibrary})
		require.True(t, diags.HasErrors())
		require.Nil(t, r, "no recipe when there are errors")
		got := reportedErrors(t, file, diags)
		if !equalErrors(want, got) {
			var b strings.Builder
			WriteDiagnostics(&b, nil, diags, false)
			t.Logf("diagnostics:\n%s", b.String())
		}
		require.Equal(t, want, got)
	})
}

// eachErrorFile runs check, as a subtest, on each file of glob (at least
// min of them) with the errors its "# ERROR:" markers expect.
func eachErrorFile(t *testing.T, glob string, min int, check func(t *testing.T, file string, want map[int][]string)) {
	files, err := filepath.Glob(glob)
	require.NoError(t, err)
	require.GreaterOrEqual(t, len(files), min)
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			src, err := os.ReadFile(file)
			require.NoError(t, err)
			want := expectedErrors(t, src)
			require.NotEmpty(t, want, "no ERROR markers")
			check(t, file, want)
		})
	}
}

func equalErrors(a, b map[int][]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if strings.Join(v, "\x00") != strings.Join(b[k], "\x00") {
			return false
		}
	}
	return true
}

// Diagnostics Kiln creates say what to do: they never end without a hint.
func TestKilnDiagnosticsHaveHints(t *testing.T) {
	files, _ := filepath.Glob("testdata/errors/*.hcl")
	for _, file := range files {
		_, _, diags := Load(file, LoadOptions{Library: testLibrary})
		for _, d := range diags {
			require.NotEmpty(t, d.Summary)
			require.NotNil(t, d.Subject, "%s: %s", file, d.Summary)
			require.Greater(t, len(d.Detail), len(d.Summary), "%s: %s: detail %q", file, d.Summary, d.Detail)
		}
	}
}

func TestLoadMissingFile(t *testing.T) {
	r, files, diags := Load("testdata/no-such-recipe.hcl", LoadOptions{Library: testLibrary})
	require.Nil(t, r)
	require.NotNil(t, files)
	require.Len(t, diags, 1)
	require.Equal(t, "Cannot read recipe", diags[0].Summary)
	require.Equal(t, "testdata/no-such-recipe.hcl", diags[0].Subject.Filename)
}

// Script paths resolve against the directory of the file name given to
// Parse, not the working directory.
func TestParseScriptRelativeToRecipe(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "scripts"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "scripts", "a.sh"), []byte("true\n"), 0o644))
	src := []byte(`image "s" {
  version = "1.0.0"
  base "debian" { suite = "bookworm" }
  build "shell" "a" { script = "scripts/a.sh" }
  build "shell" "dir" { script = "scripts" }
}
`)
	_, _, diags := Parse(filepath.Join(dir, "r.hcl"), src, LoadOptions{Library: testLibrary})
	require.Len(t, diags, 1, "%v", diags)
	require.Equal(t, "Script is not a file", diags[0].Summary)
	require.Equal(t, 5, diags[0].Subject.Start.Line)

	r, _, diags := Parse(filepath.Join(dir, "r.hcl"), src[:bytes.Index(src, []byte("  build \"shell\" \"dir\""))], LoadOptions{Library: testLibrary})
	require.Nil(t, r)
	require.True(t, diags.HasErrors(), "the image block is cut short: a syntax error")

	good := bytes.Replace(src, []byte("  build \"shell\" \"dir\" { script = \"scripts\" }\n"), nil, 1)
	r, _, diags = Parse(filepath.Join(dir, "r.hcl"), good, LoadOptions{Library: testLibrary})
	require.False(t, diags.HasErrors(), "%v", diags)
	require.Equal(t, filepath.Join(dir, "scripts", "a.sh"), r.Image.Build[0].Action.Shell.Script)

	_, _, diags = Parse(filepath.Join(t.TempDir(), "r.hcl"), good, LoadOptions{Library: testLibrary})
	require.Len(t, diags, 1)
	require.Equal(t, "Script file not found", diags[0].Summary)
}

// Every example of HCL a diagnostic shows (its indented lines) is valid
// HCL: a hint that cannot be copied would hide the real problem behind a
// syntax error.
func TestHintsParse(t *testing.T) {
	files, _ := filepath.Glob("testdata/errors/*.hcl")
	checked := 0
	for _, file := range files {
		_, _, diags := Load(file, LoadOptions{Library: testLibrary})
		for _, d := range diags {
			for _, example := range indentedBlocks(d.Detail) {
				_, pd := hclsyntax.ParseConfig([]byte(example), "hint.hcl", hcl.InitialPos)
				require.False(t, pd.HasErrors(), "%s: %s: the hint\n%s\ndoes not parse: %s", file, d.Summary, example, pd)
				checked++
			}
		}
	}
	require.GreaterOrEqual(t, checked, 4, "the layout, lifecycle and image hints are checked")
}

// indentedBlocks returns each run of lines indented by two spaces in
// detail that holds a block, dedented.
func indentedBlocks(detail string) []string {
	var out []string
	var cur []string
	flush := func() {
		if text := strings.Join(cur, "\n"); strings.Contains(text, "{") {
			out = append(out, text)
		}
		cur = nil
	}
	for _, l := range strings.Split(detail, "\n") {
		if strings.HasPrefix(l, "  ") {
			cur = append(cur, l[2:])
			continue
		}
		flush()
	}
	flush()
	return out
}

// The "did you mean" of undeclared references, in the error files.
func TestUndeclaredReferencesSuggest(t *testing.T) {
	for file, want := range map[string][]string{
		"testdata/errors/unknown_reference.hcl": {`Did you mean "suite"?`, `Did you mean "packages"?`, `no variable named "nothing_like_it"`},
		"testdata/errors/locals.hcl":            {`Did you mean "name"?`},
		"testdata/errors/undeclared_var.hcl":    {`Did you mean "suite"?`},
	} {
		_, _, diags := Load(file, LoadOptions{Library: testLibrary})
		var details []string
		for _, d := range diags {
			if strings.HasPrefix(d.Summary, "Reference to undeclared") {
				details = append(details, d.Detail)
			}
		}
		require.Len(t, details, len(want), file)
		for i, w := range want {
			require.Contains(t, details[i], w, file)
		}
	}
	_, _, diags := Load("testdata/errors/unknown_reference.hcl", LoadOptions{Library: testLibrary})
	require.NotContains(t, diags[2].Detail, "Did you mean", "no suggestion when nothing is close")
}
