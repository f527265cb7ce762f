package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/kiln-build/kiln/internal/testhook"
)

// pauseInPublishEnv makes this test binary run as kiln with a build held in
// its publish window: it writes its pid to the named file there and waits,
// so a test can SIGKILL a real build at that point. Only test code reads it.
const pauseInPublishEnv = "KILN_TEST_BINARY_PAUSE_IN_PUBLISH"

func TestMain(m *testing.M) {
	if os.Getenv(asKilnEnv) == "1" {
		os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
	}
	if path := os.Getenv(pauseInPublishEnv); path != "" {
		testhook.InPublish = func() {
			if os.WriteFile(path, []byte(strconv.Itoa(os.Getpid())), 0o644) == nil {
				time.Sleep(10 * time.Minute)
			}
		}
		os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
	}
	code := m.Run()
	if code == 0 && e2eEnabled() && flag.Lookup("test.run").Value.String() == "" {
		if missing := unbuiltExamples(); len(missing) > 0 {
			fmt.Fprintf(os.Stderr, "FAIL: examples no end-to-end test built and booted: %v\nbuild each in a test (buildExample), so that no example rots\n", missing)
			code = 1
		}
	}
	os.Exit(code)
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
