package testutil

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"

	"github.com/kiln-build/kiln/internal/run"
)

// ToolsDir is where the judges of run.GoJudgeTools are built and kept
// between runs: $KILN_TOOLS_DIR, else kiln/tools in the user's cache
// directory.
func ToolsDir() string {
	if d := os.Getenv("KILN_TOOLS_DIR"); d != "" {
		return d
	}
	if d, err := os.UserCacheDir(); err == nil {
		return filepath.Join(d, "kiln", "tools")
	}
	return filepath.Join(os.TempDir(), "kiln-tools")
}

var goTools sync.Map // tool name -> *goTool

type goTool struct {
	once sync.Once
	err  error
}

// provideGoTools puts on PATH every tool among tools that run.GoJudgeTools
// lists and PATH lacks, building it with go install (from the Go module
// proxy) into ToolsDir()/NAME@VERSION the first time. The error names the
// command that failed and its output.
func provideGoTools(tools []string) error {
	for _, tool := range tools {
		mod, ok := run.GoJudgeTools[tool]
		if !ok {
			continue
		}
		if _, err := exec.LookPath(tool); err == nil {
			continue
		}
		v, _ := goTools.LoadOrStore(tool, &goTool{})
		g := v.(*goTool)
		g.once.Do(func() { g.err = installGoTool(tool, mod) })
		if g.err != nil {
			return g.err
		}
	}
	return nil
}

var pathMu sync.Mutex

func installGoTool(tool, mod string) error {
	_, version, _ := strings.Cut(mod, "@")
	dir := filepath.Join(ToolsDir(), tool+"@"+version)
	if _, err := os.Stat(filepath.Join(dir, tool)); err != nil {
		if err := os.MkdirAll(ToolsDir(), 0o755); err != nil {
			return err
		}
		// Build into a directory of its own, then rename it into place:
		// another test binary building the same tool at once never sees
		// half a file.
		tmp, err := os.MkdirTemp(ToolsDir(), ".install-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		if err := os.Chmod(tmp, 0o755); err != nil {
			return err
		}
		cmd := exec.Command("go", "install", mod)
		cmd.Env = append(os.Environ(), "GOBIN="+tmp, "GOFLAGS=")
		cmd.Dir = tmp
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("%s needs %s: %w\n%s", tool, run.Quote(cmd.Args), err, out)
		}
		if err := os.Rename(tmp, dir); err != nil {
			if _, statErr := os.Stat(filepath.Join(dir, tool)); statErr != nil {
				return fmt.Errorf("installing %s: %w", tool, err)
			}
		}
	}
	pathMu.Lock()
	defer pathMu.Unlock()
	return os.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))
}
