package progress

import (
	"bytes"
	"regexp"
	"testing"

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

func TestQuiet(t *testing.T) {
	var q Quiet
	q.Start("a", "b")("c")
	q.Info("x")
}
