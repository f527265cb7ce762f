package components

import (
	"context"
	"fmt"
	"time"

	"github.com/kiln-build/kiln/recipes"
)

// Step is a compiled step, ready to run: in the image tree during a build,
// or in the booted guest as a test.
type Step struct {
	Name    string
	Script  []byte // executable text; a #! line picks the interpreter, else /bin/sh -e; nil: only Files
	Env     map[string]string
	Timeout time.Duration // per attempt
	// Files are placed into the tree by Kiln (through fsroot) before Script
	// runs. Guest steps have none: their files are embedded in the script.
	Files []Placed
	// Retries is how many more times a failed attempt is tried.
	Retries int
	// Continue logs a failure (after the retries) and goes on with the next step.
	Continue bool
	// NoCache keeps the step's tree out of the layer cache (cache = false,
	// or a validate step), and with it every later step's.
	NoCache bool
}

// Placed is a file Kiln writes into the tree itself (through fsroot, never
// through a path the tree controls) before the step's script runs.
type Placed struct {
	Path string // absolute, inside the image
	Data []byte
	Mode uint32
}

// BuildSteps compiles build (or validate) steps for the image tree: files
// to place and a script to run, with the step's policy. Downloads are
// fetched here.
func BuildSteps(ctx context.Context, in []recipes.Step) ([]Step, error) {
	return compileAll(ctx, in, "step", func(s recipes.Step, st Step) Step {
		st.Name, st.Env, st.Timeout = s.Name, s.Environment, s.Timeout
		st.Retries, st.Continue, st.NoCache = s.Retries, s.OnFailure == recipes.Continue, s.NoCache
		return st
	})
}

// GuestSteps compiles test steps for the guest, which runs each once. A
// plain shell step runs as written; any other action, or a step with
// retries or on_failure = "continue", runs through a self-contained wrapper
// script (files embedded) that applies the policy inside the guest, with a
// timeout that allows every attempt.
func GuestSteps(ctx context.Context, in []recipes.Step) ([]Step, error) {
	return compileAll(ctx, in, "test", func(s recipes.Step, w Step) Step {
		st := Step{Name: s.Name, Script: w.Script, Env: s.Environment, Timeout: s.Timeout}
		plain := s.Action.Kind == recipes.KindShell && s.Retries == 0 && s.OnFailure != recipes.Continue
		if !plain {
			st.Script = guestScript(w, s.Policy)
			st.Timeout = time.Duration(s.Retries+1)*(s.Timeout+5*time.Second) + 10*time.Second
		}
		return st
	})
}

// compileAll compiles each step's action and lets finish make the Step
// from the step and its compiled action. Errors name the step as what
// ("step" or "test").
func compileAll(ctx context.Context, in []recipes.Step, what string, finish func(recipes.Step, Step) Step) ([]Step, error) {
	var out []Step
	for _, s := range in {
		w, err := compile(ctx, s.Action)
		if err != nil {
			return nil, fmt.Errorf("%s %q: %w", what, s.Name, err)
		}
		out = append(out, finish(s, w))
	}
	return out, nil
}
