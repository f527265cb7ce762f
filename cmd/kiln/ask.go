package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/kiln-build/kiln/builder"
)

// askOnTerminal is --on-error=ask's question, put on the terminal when a
// stage fails: retry the stage, look inside (a shell in the tree, or kiln
// run of the disk) and come back, keep what failed, or abort.
func askOnTerminal(in, term *os.File) func(ctx context.Context, p builder.Paused) builder.Decision {
	return func(ctx context.Context, p builder.Paused) builder.Decision {
		fmt.Fprintf(term, "\nkiln: stage %s failed (attempt %d):\n  %s\n", p.Stage, p.Attempt, strings.ReplaceAll(p.Err.Error(), "\n", "\n  "))
		type choice struct{ key, word, text string }
		var choices []choice
		if p.CanRetry {
			what := "run the stage again"
			switch p.Stage {
			case "build":
				what = "run the build steps again from the failed one"
			case "lint":
				what = "read the tree again (after removing what it found, in a shell)"
			}
			choices = append(choices, choice{"r", "retry", what})
		}
		switch {
		case p.Tree != "":
			choices = append(choices, choice{"s", "shell", "a shell in the tree " + p.Tree + " (chrooted; exit it to come back here)"},
				choice{"k", "keep", "stop, and keep the tree in <images>/.failed/"})
		case p.Disk != "":
			choices = append(choices, choice{"s", "shell", "boot the disk on this terminal, as kiln run does (Ctrl-A x to come back here)"},
				choice{"k", "keep", "stop, and keep the disk in <images>/.failed/"})
		}
		choices = append(choices, choice{"a", "abort", "stop and clean up (the logs are kept)"})
		var keys []string
		for _, c := range choices {
			keys = append(keys, c.key)
		}
		for {
			fmt.Fprintln(term, "What now?")
			for _, c := range choices {
				fmt.Fprintf(term, "  %s  %-6s %s\n", c.key, c.word, c.text)
			}
			fmt.Fprintf(term, "[%s]? ", strings.Join(keys, "/"))
			line, err := readLine(ctx, in)
			if err != nil {
				fmt.Fprintln(term)
				return builder.Cleanup // EOF or Ctrl-C: abort
			}
			answer := strings.ToLower(strings.TrimSpace(line))
			picked := ""
			for _, c := range choices {
				if answer != "" && (answer == c.key || answer == c.word) {
					picked = c.word
				}
			}
			switch picked {
			case "retry":
				return builder.Retry
			case "keep":
				return builder.Keep
			case "abort":
				return builder.Cleanup
			case "shell":
				lookInside(ctx, p, in, term)
				continue
			}
			fmt.Fprintf(term, "kiln: %q is not one of the answers\n", answer)
		}
	}
}

// lookInside gives the person the tree or the disk, with Ctrl-C going to
// the shell or the guest rather than stopping kiln.
func lookInside(ctx context.Context, p builder.Paused, in, term *os.File) {
	release := holdInterrupts(ctx)
	defer release()
	defer reclaimTerminal(in)
	if p.Tree != "" {
		fmt.Fprintf(term, "kiln: a shell in %s; exit it to come back to the question\n", p.Tree)
		err := builder.Shell(ctx, p.Tree, in, term, term)
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) { // the shell's own exit status is the person's business
			fmt.Fprintf(term, "kiln: the shell: %v\n", err)
		}
		return
	}
	cmdRun(ctx, []string{p.Disk}, term, term)
}

// reclaimTerminal makes kiln's process group the terminal's foreground
// group again. An interactive shell takes the terminal for its own group
// and, in the sandbox's PID namespace, cannot give it back to a group it
// does not see; kiln, left in the background, would get EIO on reading.
// Asking for the terminal from the background raises SIGTTOU, ignored
// meanwhile.
func reclaimTerminal(f *os.File) {
	signal.Ignore(syscall.SIGTTOU)
	defer signal.Reset(syscall.SIGTTOU)
	_ = unix.IoctlSetPointerInt(int(f.Fd()), unix.TIOCSPGRP, unix.Getpgrp())
}

// readLine reads one line from in, a byte at a time so nothing meant for a
// shell started afterwards is swallowed; it gives up when ctx is done.
func readLine(ctx context.Context, in io.Reader) (string, error) {
	type result struct {
		line string
		err  error
	}
	got := make(chan result, 1)
	go func() {
		var b strings.Builder
		buf := make([]byte, 1)
		for {
			n, err := in.Read(buf)
			if n == 1 {
				if buf[0] == '\n' {
					got <- result{b.String(), nil}
					return
				}
				b.WriteByte(buf[0])
			}
			if err != nil {
				got <- result{b.String(), err}
				return
			}
		}
	}()
	select {
	case r := <-got:
		return r.line, r.err
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

// interrupts is how a command's context hears SIGINT and SIGTERM: either
// cancels it, except SIGINT while held (a shell or a guest console has the
// terminal, and Ctrl-C is theirs).
type interrupts struct {
	mu   sync.Mutex
	held int
}

type interruptsKey struct{}

// interruptContext is the context a command runs with.
func interruptContext() (context.Context, func()) {
	ctx, cancel := context.WithCancel(context.Background())
	in := &interrupts{}
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, os.Interrupt, syscall.SIGTERM)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case sig := <-ch:
				in.mu.Lock()
				held := in.held > 0
				in.mu.Unlock()
				if sig == os.Interrupt && held {
					continue
				}
				cancel()
				return
			}
		}
	}()
	return context.WithValue(ctx, interruptsKey{}, in), func() {
		signal.Stop(ch)
		cancel()
	}
}

// holdInterrupts makes SIGINT leave ctx alone until the returned function
// is called; SIGTERM still cancels it.
func holdInterrupts(ctx context.Context) func() {
	in, ok := ctx.Value(interruptsKey{}).(*interrupts)
	if !ok {
		return func() {}
	}
	in.mu.Lock()
	in.held++
	in.mu.Unlock()
	return func() {
		in.mu.Lock()
		in.held--
		in.mu.Unlock()
	}
}
