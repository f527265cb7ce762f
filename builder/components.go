package builder

import (
	"bytes"
	"context"
	"fmt"
	"github.com/kiln-build/kiln/manifest"
	"io"
	"io/fs"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/kiln-build/kiln/internal/fsroot"
	"github.com/kiln-build/kiln/internal/run"
	"github.com/kiln-build/kiln/internal/sandbox"

	"github.com/kiln-build/kiln/components"
	"github.com/kiln-build/kiln/recipes"
)

func manifestComponents(in []recipes.Component) []manifest.Component {
	out := []manifest.Component{}
	for _, c := range in {
		out = append(out, manifest.Component{Name: c.Name, Constraint: c.Constraint, Version: c.Version, Source: c.Source, SHA256: c.SHA256, Parameters: c.Parameters, FilesSHA256: c.FilesSHA256})
	}
	return out
}

// buildSteps compiles recipe steps (build or validate) for runSteps: files
// to place and a script to run in the tree. Downloads are fetched here.
func buildSteps(ctx context.Context, in []recipes.Step) ([]Step, error) {
	var out []Step
	for _, s := range in {
		w, err := components.Compile(ctx, s.Action)
		if err != nil {
			return nil, fmt.Errorf("step %q: %w", s.Name, err)
		}
		out = append(out, Step{Name: s.Name, Script: w.Script, Files: w.Files, Env: s.Environment, Timeout: s.Timeout,
			Retries: s.Retries, Continue: s.OnFailure == components.OnFailureContinue})
	}
	return out, nil
}

// guestSteps compiles test steps for the guest. A plain shell step runs as
// written; any other action, or a step with retries or on_failure =
// "continue", runs through a self-contained wrapper script (files embedded)
// that applies the policy inside the guest.
func guestSteps(ctx context.Context, in []recipes.Step) ([]Step, error) {
	var out []Step
	for _, s := range in {
		w, err := components.Compile(ctx, s.Action)
		if err != nil {
			return nil, fmt.Errorf("test %q: %w", s.Name, err)
		}
		st := Step{Name: s.Name, Script: w.Script, Env: s.Environment, Timeout: s.Timeout}
		plain := s.Action.Kind == components.KindShell && s.Retries == 0 && s.OnFailure != components.OnFailureContinue
		if !plain {
			st.Script = components.GuestScript(w, components.Policy{Timeout: s.Timeout, Retries: s.Retries, OnFailure: s.OnFailure})
			st.Timeout = time.Duration(s.Retries+1)*(s.Timeout+5*time.Second) + 10*time.Second
		}
		out = append(out, st)
	}
	return out, nil
}

// runStep places a step's files and runs its script once.
func runStep(ctx context.Context, tree string, i int, s Step, log io.Writer) error {
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
	env := sandbox.DefaultEnv()
	keys := make([]string, 0, len(s.Env))
	for k := range s.Env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		env = append(env, k+"="+s.Env[k])
	}
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
