package progress

import (
	"bytes"
	"io"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/kiln-build/kiln/internal/testutil"
	"github.com/stretchr/testify/require"
)

func TestPlainLines(t *testing.T) {
	var b bytes.Buffer
	r := New(&b) // a buffer is not a terminal: plain lines
	end := r.Start("base", "bootstrapping Debian bookworm")
	end("cache hit")
	r.Info("published %s", "x/1.0.0/1")
	require.Regexp(t, regexp.MustCompile(`^\[base\] bootstrapping Debian bookworm\n\[base\] done in [0-9.]+[mµn]?s \(cache hit\)\npublished x/1.0.0/1\n$`), b.String())
}

// Quiet (the --json face) writes nothing to stdout or stderr, where the
// JSON document goes.
func TestQuiet(t *testing.T) {
	var r Reporter = Quiet{}
	stdout, stderr := os.Stdout, os.Stderr
	pr, pw, err := os.Pipe()
	require.NoError(t, err)
	os.Stdout, os.Stderr = pw, pw
	r.Start("base", "bootstrapping")("done")
	r.Info("published %s", "x")
	os.Stdout, os.Stderr = stdout, stderr
	require.NoError(t, pw.Close())
	out, err := io.ReadAll(pr)
	require.NoError(t, err)
	require.Empty(t, out, "Quiet printed something")
}

// In CI, even a terminal gets plain lines, never a spinner.
func TestNewIsPlainInCI(t *testing.T) {
	t.Setenv("CI", "true")
	_, plain := New(os.Stderr).(*Plain)
	require.True(t, plain)
}

// On a terminal the spinner is used, unless NO_COLOR, CI or TERM=dumb asks
// for plain lines (no escapes, no redrawn line).
func TestNewOnATerminal(t *testing.T) {
	_, slave := testutil.PTY(t)
	t.Setenv("CI", "")
	t.Setenv("NO_COLOR", "")
	t.Setenv("TERM", "xterm")
	_, ok := New(slave).(*tty)
	require.True(t, ok, "a terminal gets the spinner")
	for _, env := range []string{"NO_COLOR=1", "CI=true", "TERM=dumb"} {
		k, v, _ := strings.Cut(env, "=")
		t.Run(env, func(t *testing.T) {
			t.Setenv(k, v)
			_, ok := New(slave).(*Plain)
			require.True(t, ok, "%s gives plain lines", env)
		})
	}
}
