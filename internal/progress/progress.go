// Package progress reports a build's stages to a person or a log.
//
// One interface, three faces: a terminal spinner with elapsed time when
// stderr is a TTY, one plain line per event otherwise (quiet enough for CI
// logs), and silence for --json runs. Details of every stage go to the build
// log, not here.
package progress

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// Reporter receives a build's progress.
type Reporter interface {
	// Start begins a stage; the returned function ends it with a short note.
	Start(stage, what string) func(note string)
	// Info prints a line that matters to the user.
	Info(format string, args ...any)
}

// New picks the terminal face when w is a terminal, plain lines otherwise,
// and also on a terminal when CI or NO_COLOR is set or TERM is dumb: the
// spinner redraws its line with escapes that logs and screen readers do not
// want.
func New(w io.Writer) Reporter {
	if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) && os.Getenv("CI") == "" && os.Getenv("NO_COLOR") == "" && os.Getenv("TERM") != "dumb" {
		return &tty{w: w}
	}
	return &Plain{W: w}
}

// Quiet reports nothing.
type Quiet struct{}

func (Quiet) Start(string, string) func(string) { return func(string) {} }
func (Quiet) Info(string, ...any)               {}

// Plain prints one line when a stage starts and one when it ends.
type Plain struct {
	W  io.Writer
	mu sync.Mutex
}

func (p *Plain) Start(stage, what string) func(string) {
	start := time.Now()
	p.line("[%s] %s", stage, what)
	return func(note string) {
		if note != "" {
			note = " (" + note + ")"
		}
		p.line("[%s] done in %s%s", stage, round(time.Since(start)), note)
	}
}

func (p *Plain) Info(format string, args ...any) { p.line(format, args...) }

func (p *Plain) line(format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.W, format+"\n", args...)
}

type tty struct {
	w  io.Writer
	mu sync.Mutex
}

func (t *tty) Start(stage, what string) func(string) {
	start := time.Now()
	bar := progressbar.NewOptions(-1,
		progressbar.OptionSetWriter(t.w),
		progressbar.OptionSetDescription(fmt.Sprintf("[%s] %s", stage, what)),
		progressbar.OptionSpinnerType(14),
		progressbar.OptionShowElapsedTimeOnFinish(),
		progressbar.OptionSetElapsedTime(true),
		progressbar.OptionClearOnFinish(),
	)
	done := make(chan struct{})
	go func() {
		tick := time.NewTicker(150 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				t.mu.Lock()
				_ = bar.Add(1)
				t.mu.Unlock()
			}
		}
	}()
	return func(note string) {
		close(done)
		t.mu.Lock()
		defer t.mu.Unlock()
		_ = bar.Finish()
		if note != "" {
			note = " (" + note + ")"
		}
		fmt.Fprintf(t.w, "\r[%s] %s: done in %s%s\n", stage, what, round(time.Since(start)), note)
	}
}

func (t *tty) Info(format string, args ...any) {
	t.mu.Lock()
	defer t.mu.Unlock()
	fmt.Fprintf(t.w, format+"\n", args...)
}

func round(d time.Duration) time.Duration {
	if d < time.Second {
		return d.Round(time.Millisecond)
	}
	return d.Round(100 * time.Millisecond)
}
