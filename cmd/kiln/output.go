package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
)

// logLevels are the values of KILN_LOG.
var logLevels = map[string]slog.Level{"debug": slog.LevelDebug, "info": slog.LevelInfo, "warn": slog.LevelWarn}

// checkLogLevel reports a KILN_LOG value kiln does not know.
func checkLogLevel() error {
	_, err := logLevel()
	return err
}

func logLevel() (slog.Level, error) {
	v := strings.ToLower(strings.TrimSpace(os.Getenv("KILN_LOG")))
	if v == "" {
		return slog.LevelWarn, nil
	}
	if l, ok := logLevels[v]; ok {
		return l, nil
	}
	if v == "warning" {
		return slog.LevelWarn, nil
	}
	return 0, fmt.Errorf("KILN_LOG=%q: use debug, info or warn", os.Getenv("KILN_LOG"))
}

// newLogger is the one logger of a kiln command: text lines with a
// timestamp and a level on stderr, at the level KILN_LOG names (warn by
// default, so CI logs stay quiet). Libraries get it through their options
// (builder.Options.Logger, base.Options.Logger).
func newLogger(stderr io.Writer) *slog.Logger {
	level, _ := logLevel() // checked when the command started
	return slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
}

// noColor says whether NO_COLOR (https://no-color.org) is set to a value.
func noColor() bool { return os.Getenv("NO_COLOR") != "" }

// useColor says whether output to w may carry ANSI colour: w is a terminal
// and NO_COLOR is not set.
func useColor(w io.Writer) bool { return !noColor() && isTerminal(w) }

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// debugLog is a writer for a library's log stream (commands run, QEMU's
// command line): each line becomes a debug record of the command's
// logger, so KILN_LOG=debug shows it with a timestamp.
func debugLog(stderr io.Writer) io.Writer {
	l := newLogger(stderr)
	if !l.Enabled(context.Background(), slog.LevelDebug) {
		return io.Discard
	}
	return &logLines{log: l}
}

type logLines struct {
	log     *slog.Logger
	partial []byte
}

func (w *logLines) Write(p []byte) (int, error) {
	w.partial = append(w.partial, p...)
	for {
		i := bytes.IndexByte(w.partial, '\n')
		if i < 0 {
			return len(p), nil
		}
		if line := strings.TrimRight(string(w.partial[:i]), "\r"); line != "" {
			w.log.Debug(line)
		}
		w.partial = w.partial[i+1:]
	}
}
