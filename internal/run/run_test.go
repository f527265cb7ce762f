package run

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

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

// A started program runs in the background; Stop ends its whole process
// group, and a program that cannot start is an error at once.
func TestStartAndStop(t *testing.T) {
	p, err := Start(context.Background(), Cmd{Args: []string{"sh", "-c", "sleep 30 & exec sleep 30"}})
	require.NoError(t, err)
	require.Positive(t, p.Pid())
	select {
	case <-p.Done():
		t.Fatal("exited early")
	case <-time.After(100 * time.Millisecond):
	}
	start := time.Now()
	err = p.Stop(5 * time.Second)
	require.Error(t, err, "killed by a signal")
	require.Less(t, time.Since(start), 4*time.Second, "SIGTERM was enough")
	require.Eventually(t, func() bool { return liveInGroup(p.Pid()) == 0 }, 5*time.Second, 50*time.Millisecond, "no process of the group is left")

	p, err = Start(context.Background(), Cmd{Args: []string{"sh", "-c", "echo done >&2; exit 4"}})
	require.NoError(t, err)
	err = p.Wait()
	var e *Error
	require.ErrorAs(t, err, &e)
	require.Equal(t, 4, e.ExitCode)
	require.Contains(t, e.Stderr, "done")

	_, err = Start(context.Background(), Cmd{Args: []string{"kiln-no-such-program"}})
	require.ErrorContains(t, err, "kiln-no-such-program")
}

// liveInGroup counts the processes of a process group that are not zombies.
func liveInGroup(pgid int) int {
	n := 0
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, f := range stats {
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		// pid (comm) state ppid pgrp ...: comm may hold spaces, so split after ")".
		fields := strings.Fields(string(data[bytes.LastIndexByte(data, ')')+1:]))
		if len(fields) > 2 && fields[0] != "Z" && fields[2] == strconv.Itoa(pgid) {
			n++
		}
	}
	return n
}
