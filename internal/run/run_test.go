package run

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestQuote(t *testing.T) {
	require.Equal(t, `mke2fs -d /tmp/a 'with space' 'it'\''s' ''`, Quote([]string{"mke2fs", "-d", "/tmp/a", "with space", "it's", ""}))
}

// QuoteArg survives a real shell, whatever the string holds: generated
// scripts quote paths, names and package lists with it.
func TestQuoteArgRoundTripsThroughSh(t *testing.T) {
	for _, s := range []string{"", "plain", "/etc/a-b_c.d", "root:www-data", "it's", `"double" $HOME $(id) ` + "`id`",
		"a\nb", "'''", `\`, "-rf /", "*", "~", "a=b;c", "#x"} {
		out, err := Output(context.Background(), Cmd{Args: []string{"/bin/sh", "-c", "printf %s " + QuoteArg(s)}})
		require.NoError(t, err, s)
		require.Equal(t, s, string(out))
	}
}

func TestErrorCarriesCommandAndStderr(t *testing.T) {
	err := Run(context.Background(), Cmd{Args: []string{"sh", "-c", "echo first >&2; echo 'bad thing' >&2; exit 3"}})
	var e *Error
	require.True(t, errors.As(err, &e))
	require.Equal(t, 3, e.ExitCode)
	require.Contains(t, err.Error(), `sh -c 'echo first >&2; echo '\''bad thing'\'' >&2; exit 3'`)
	require.Contains(t, err.Error(), "bad thing")
	require.Contains(t, err.Error(), "exit status 3")
}

func TestOutputAndMissingProgram(t *testing.T) {
	out, err := Output(context.Background(), Cmd{Args: []string{"echo", "hi"}})
	require.NoError(t, err)
	require.Equal(t, "hi\n", string(out))

	err = Run(context.Background(), Cmd{Args: []string{"kiln-no-such-program"}})
	require.Error(t, err)
	require.Contains(t, err.Error(), "kiln-no-such-program")
}

func TestCancelKillsProcessGroup(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var log strings.Builder
	done := make(chan error)
	go func() { done <- Run(ctx, Cmd{Args: []string{"sh", "-c", "sleep 30 & sleep 30"}, Log: &log}) }()
	cancel()
	err := <-done
	require.ErrorIs(t, err, context.Canceled)
}
