package run

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// Every package in the tool table is one scripts/install-deps.sh installs,
// so a fresh machine set up by it passes Require.
func TestToolsAreInstalledByInstallDeps(t *testing.T) {
	data, err := os.ReadFile("../../scripts/install-deps.sh")
	require.NoError(t, err)
	m := regexp.MustCompile(`(?s)packages=\((.*?)\n\)`).FindSubmatch(data)
	require.NotNil(t, m, "install-deps.sh has a packages=( ... ) list")
	installed := map[string]bool{"coreutils": true, "util-linux": true, "tar": true, "bash": true} // essential: on every Debian system
	for _, line := range strings.Split(string(m[1]), "\n") {
		line, _, _ = strings.Cut(line, "#")
		for _, p := range strings.Fields(line) {
			installed[p] = true
		}
	}
	for _, table := range []map[string]string{Tools, JudgeTools} {
		for tool, pkg := range table {
			require.True(t, installed[pkg], "%s comes from %s, which install-deps.sh does not install", tool, pkg)
		}
	}
	for _, tool := range BuildTools {
		require.Contains(t, Tools, tool, "every build tool has a package")
	}
}

// Every tool a test asks for by name has a package in one of the tables,
// so that CI (which fails on a missing tool) installs it, or a pinned Go
// command that testutil builds.
func TestEveryToolTestsNeedHasAPackage(t *testing.T) {
	call := regexp.MustCompile(`testutil\.(?:Require|Have)\(t, ([^)]*)\)`)
	name := regexp.MustCompile(`"([^"]+)"`)
	found := 0
	err := filepath.WalkDir("../..", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && strings.HasPrefix(d.Name(), ".") && path != "../.." {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, "_test.go") {
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range call.FindAllSubmatch(data, -1) {
			for _, n := range name.FindAllSubmatch(m[1], -1) {
				found++
				tool := string(n[1])
				if mod, ok := GoJudgeTools[tool]; ok {
					require.Regexp(t, `^[a-z0-9.-]+(/[A-Za-z0-9._-]+)+@v[0-9]+\.[0-9]+\.[0-9]+$`, mod, "%s: GoJudgeTools pins a module command at a release", tool)
					continue
				}
				require.NotEmpty(t, PackageFor(tool), "%s asks for %q, which neither Tools, JudgeTools nor GoJudgeTools maps to a package", path, tool)
			}
		}
		return nil
	})
	require.NoError(t, err)
	require.Greater(t, found, 20, "the scan finds the tests' tool lists")
}

func TestRequireNamesEveryMissingTool(t *testing.T) {
	require.NoError(t, Require("sh", "cp"))
	old := Tools
	Tools = map[string]string{"kiln-no-such-a": "pkg-a", "kiln-no-such-b": "pkg-a", "kiln-no-such-c": "pkg-c"}
	defer func() { Tools = old }()
	err := Require("sh", "kiln-no-such-a", "kiln-no-such-b", "kiln-no-such-c", "kiln-no-such-d")
	require.Error(t, err)
	require.Contains(t, err.Error(), "missing host tools: kiln-no-such-a, kiln-no-such-b, kiln-no-such-c, kiln-no-such-d")
	require.Contains(t, err.Error(), "apt-get install pkg-a pkg-c ", "each package once")
}

func TestQuoteArg(t *testing.T) {
	for in, want := range map[string]string{
		"":               "''",
		"plain-path/x.1": "plain-path/x.1",
		"two words":      "'two words'",
		"it's":           `'it'\''s'`,
		"$HOME":          "'$HOME'",
		"a\nb":           "'a\nb'",
		`back\slash`:     `'back\slash'`,
	} {
		require.Equal(t, want, QuoteArg(in), "%q", in)
	}
	require.Equal(t, `echo 'a b' ''`, Quote([]string{"echo", "a b", ""}))
}
