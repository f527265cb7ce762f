package run

import (
	"os"
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
	installed := map[string]bool{"coreutils": true, "util-linux": true} // essential: on every Debian system
	for _, line := range strings.Split(string(m[1]), "\n") {
		line, _, _ = strings.Cut(line, "#")
		for _, p := range strings.Fields(line) {
			installed[p] = true
		}
	}
	for tool, pkg := range Tools {
		require.True(t, installed[pkg], "%s comes from %s, which install-deps.sh does not install", tool, pkg)
	}
	for _, tool := range BuildTools {
		require.Contains(t, Tools, tool, "every build tool has a package")
	}
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
