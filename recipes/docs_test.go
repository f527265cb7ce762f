package recipes

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/stretchr/testify/require"
)

// docSnippet is one ```hcl block of the documentation.
type docSnippet struct {
	file string
	line int    // of the opening fence
	kind string // the marker's kind; "" for a complete recipe
	src  string
}

// snippetMarkerRE is the HTML comment that, on the line before a ```hcl
// fence, says what the block is (docs/testing.md lists the kinds).
var snippetMarkerRE = regexp.MustCompile(`^<!--\s*kiln:([a-z-]+)\s*-->$`)

// snippetKinds are the markers a ```hcl block may carry.
var snippetKinds = map[string]bool{"fragment": true, "in-image": true, "component": true, "pipelines": true, "varfile": true}

func docSnippets(t *testing.T) []docSnippet {
	t.Helper()
	files, err := filepath.Glob("../docs/*.md")
	require.NoError(t, err)
	files = append([]string{"../README.md"}, files...)
	var out []docSnippet
	for _, f := range files {
		data, err := os.ReadFile(f)
		require.NoError(t, err)
		sc := bufio.NewScanner(bytes.NewReader(data))
		var prev string
		var cur *docSnippet
		var body []string
		for n := 1; sc.Scan(); n++ {
			line := sc.Text()
			switch {
			case cur == nil && strings.TrimSpace(line) == "```hcl":
				cur = &docSnippet{file: f, line: n}
				if m := snippetMarkerRE.FindStringSubmatch(strings.TrimSpace(prev)); m != nil {
					require.True(t, snippetKinds[m[1]], "%s:%d: unknown snippet kind %q", f, n-1, m[1])
					cur.kind = m[1]
				}
				body = nil
			case cur != nil && strings.TrimSpace(line) == "```":
				cur.src = strings.Join(body, "\n") + "\n"
				out = append(out, *cur)
				cur = nil
			case cur != nil:
				body = append(body, line)
			}
			prev = line
		}
		require.NoError(t, sc.Err())
		require.Nil(t, cur, "%s: a ```hcl block is not closed", f)
	}
	return out
}

// Every ```hcl block in README.md and docs/ is valid: it parses; a complete
// recipe (no marker) validates, with the built-in components and those of
// examples/; a block marked in-image validates inside a minimal image; a
// component file, a pipelines file and a variables file are checked as
// such. Every block is in kiln fmt's layout. Copying an example never
// gives a syntax error.
func TestDocSnippets(t *testing.T) {
	snippets := docSnippets(t)
	require.GreaterOrEqual(t, len(snippets), 15)
	kinds := map[string]int{}
	for _, s := range snippets {
		kinds[s.kind]++
		where := s.file + ":" + strconv.Itoa(s.line)
		_, diags := hclsyntax.ParseConfig([]byte(s.src), where, hcl.InitialPos)
		require.False(t, diags.HasErrors(), "%s: the block does not parse: %s\n%s", where, diags, s.src)
		opts := LoadOptions{Library: testLibrary}
		// As if it were an example: component_paths = ["components"]
		// finds examples/components.
		name := filepath.Join("..", "examples", "doc-snippet.hcl")
		switch s.kind {
		case "":
			_, _, diags = Parse(name, []byte(s.src), opts)
		case "in-image":
			base := "  base \"debian\" {\n    suite = \"trixie\"\n  }\n"
			if strings.Contains(s.src, "base \"") {
				base = ""
			}
			_, _, diags = Parse(name, []byte("image \"doc\" {\n  version = \"1.0.0\"\n"+base+s.src+"}\n"), opts)
		case "component":
			_, diags = parseComponentFile(where, "", []byte(s.src), nil)
		case "pipelines":
			_, _, diags = ParsePipelines(name, []byte(s.src))
			diags = without(diags, "Recipe not found", "Variables file not found")
		case "varfile":
			f, _ := hclsyntax.ParseConfig([]byte(s.src), where, hcl.InitialPos)
			_, diags = f.Body.JustAttributes()
		}
		require.False(t, diags.HasErrors(), "%s (%s): %s\n%s", where, or(s.kind, "recipe"), diags, s.src)
		formatted, _, _ := Format(where, []byte(s.src))
		require.Equal(t, s.src, string(formatted), "%s: the block is not in kiln fmt's layout", where)
	}
	require.GreaterOrEqual(t, kinds[""], 3, "complete recipes: %v", kinds)
	require.GreaterOrEqual(t, kinds["in-image"], 5, "image fragments: %v", kinds)
}

func without(diags hcl.Diagnostics, summaries ...string) hcl.Diagnostics {
	var out hcl.Diagnostics
	for _, d := range diags {
		if !contains(summaries, d.Summary) {
			out = append(out, d)
		}
	}
	return out
}

func or(s, dflt string) string {
	if s == "" {
		return dflt
	}
	return s
}
