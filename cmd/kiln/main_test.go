package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kiln-build/kiln/internal/testhook"
)

// The kill tests run this test binary as kiln with internal/testhook's
// hook set (only test code reads these variables; kiln itself reads none):
//
//   - traceEnv names a file to which every point the process reaches is
//     appended, one per line;
//   - pauseAtEnv names a point (testhook.PublishWindow, testhook.Stage +
//     "outputs", ...) at which the process writes its pid to the file
//     pausedEnv names and waits there until SIGTERM or SIGINT (then it goes
//     on, with kiln's context cancelled), SIGUSR1 (then it goes on as if
//     never held) or SIGKILL.
const (
	traceEnv   = "KILN_TEST_BINARY_TRACE"
	pauseAtEnv = "KILN_TEST_BINARY_PAUSE_AT"
	pausedEnv  = "KILN_TEST_BINARY_PAUSED"
)

func TestMain(m *testing.M) {
	if os.Getenv(asKilnEnv) == "1" {
		os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
	}
	if os.Getenv(traceEnv) != "" || os.Getenv(pauseAtEnv) != "" {
		os.Exit(runHooked(os.Args[1:]))
	}
	code := m.Run()
	removeShared()
	if code == 0 && e2eEnabled() && flag.Lookup("test.run").Value.String() == "" {
		if missing := unbuiltExamples(); len(missing) > 0 {
			fmt.Fprintf(os.Stderr, "FAIL: examples no end-to-end test built and booted: %v\nbuild each in a test (buildExample), so that no example rots\n", missing)
			code = 1
		}
	}
	os.Exit(code)
}

// runHooked runs kiln with the test hook set from the environment.
func runHooked(args []string) int {
	trace, pauseAt, paused := os.Getenv(traceEnv), os.Getenv(pauseAtEnv), os.Getenv(pausedEnv)
	var once sync.Once
	testhook.Reached = func(point string) {
		if trace != "" {
			if f, err := os.OpenFile(trace, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644); err == nil {
				fmt.Fprintln(f, point)
				f.Close()
			}
		}
		if point != pauseAt {
			return
		}
		once.Do(func() {
			stop, resume := make(chan os.Signal, 1), make(chan os.Signal, 1)
			signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
			signal.Notify(resume, syscall.SIGUSR1)
			defer signal.Stop(stop)
			defer signal.Stop(resume)
			if os.WriteFile(paused, []byte(strconv.Itoa(os.Getpid())), 0o644) != nil {
				return
			}
			select {
			case <-resume:
			case <-stop:
				// kiln's own signal context is cancelled by a goroutine of
				// signal.NotifyContext: let it run before the process goes
				// on, as it would have long before a real stage's next check.
				time.Sleep(200 * time.Millisecond)
			case <-time.After(10 * time.Minute):
			}
		})
	}
	return run(args, os.Stdout, os.Stderr)
}

// builtExamples records the example recipes an end-to-end test built and
// booted; after a full e2e run, every examples/*.hcl must be among them.
var builtExamples = struct {
	sync.Mutex
	m map[string]bool
}{m: map[string]bool{}}

func markBuilt(recipe string) {
	abs, err := filepath.Abs(recipe)
	if err != nil {
		return
	}
	builtExamples.Lock()
	builtExamples.m[abs] = true
	builtExamples.Unlock()
}

// unbuiltExamples lists the examples no test built. It is only meaningful
// after every e2e test ran (no -run filter).
func unbuiltExamples() []string {
	files, _ := filepath.Glob("../../examples/*.hcl")
	var out []string
	for _, f := range files {
		abs, _ := filepath.Abs(f)
		if !builtExamples.m[abs] {
			out = append(out, f)
		}
	}
	return out
}
