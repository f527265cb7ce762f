package builder

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"

	"github.com/kiln-build/kiln/internal/fsroot"
	"github.com/kiln-build/kiln/internal/run"
	"github.com/kiln-build/kiln/internal/sandbox"

	"github.com/kiln-build/kiln/components"
	"github.com/kiln-build/kiln/manifest"
	"github.com/kiln-build/kiln/recipes"
)

func manifestComponents(in []recipes.Component) []manifest.Component {
	out := []manifest.Component{}
	for _, c := range in {
		out = append(out, manifest.Component{Name: c.Name, Constraint: c.Constraint, Version: c.Version, Source: c.Source, SHA256: c.SHA256, Parameters: c.PublicParameters(), FilesSHA256: c.FilesSHA256})
	}
	return out
}

// runStep places a step's files and runs its script once.
func runStep(ctx context.Context, tree string, i int, s components.Step, log io.Writer) error {
	for _, f := range s.Files {
		if err := placeFile(tree, f); err != nil {
			return &StepError{Step: s.Name, ExitCode: -1, Err: fmt.Errorf("placing %s: %w", f.Path, err)}
		}
	}
	if s.Script == nil {
		return nil
	}
	path := fmt.Sprintf("%s/%02d-step", stepDir, i)
	if err := fsroot.WriteFile(tree, path, s.Script, 0o755); err != nil {
		return err
	}
	defer func() { _ = fsroot.Remove(tree, path) }()
	env := stepEnv(s)
	sctx, cancel := context.WithTimeout(ctx, s.Timeout)
	defer cancel()
	args := []string{path}
	if !bytes.HasPrefix(s.Script, []byte("#!")) {
		args = []string{"/bin/sh", "-e", path}
	}
	err := sandbox.Run(sctx, sandbox.Spec{Root: tree, Args: args, Env: env}, nil, log)
	timedOut := sctx.Err() == context.DeadlineExceeded
	if err == nil {
		return nil
	}
	se := &StepError{Step: s.Name, ExitCode: -1, Err: err}
	if re, ok := err.(*run.Error); ok {
		se.ExitCode, se.Tail = re.ExitCode, re.Stderr
		se.Err = re.Err
	}
	if timedOut {
		se.ExitCode, se.Err = -1, fmt.Errorf("timed out after %s", s.Timeout)
	}
	return se
}

// placeFile writes a staged file into the tree: whatever was at the path
// (a symlink included) is replaced, and the mode is set exactly.
func placeFile(tree string, f components.Placed) error {
	if err := fsroot.Remove(tree, f.Path); err != nil {
		return err
	}
	mode := fs.FileMode(f.Mode).Perm()
	if err := fsroot.WriteFile(tree, f.Path, f.Data, mode); err != nil {
		return err
	}
	host, err := fsroot.Resolve(tree, f.Path)
	if err != nil {
		return err
	}
	return os.Chmod(host, mode)
}

func firstLine(err error) string {
	s, _, _ := strings.Cut(err.Error(), "\n")
	return s
}
