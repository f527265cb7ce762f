package builder

import (
	"context"
	"fmt"
	"time"

	"github.com/kiln-build/kiln/components"
	"github.com/kiln-build/kiln/recipes"
)

// ManifestComponent records a component the recipe used, resolved.
type ManifestComponent struct {
	Name       string         `json:"name"`
	Constraint string         `json:"constraint"` // as the recipe wrote it, e.g. 1.x.x
	Version    string         `json:"version"`    // what it resolved to
	Source     string         `json:"source"`     // "builtin" or the component file's path
	SHA256     string         `json:"sha256"`     // of the component file
	Parameters map[string]any `json:"parameters"`
}

func manifestComponents(in []recipes.Component) []ManifestComponent {
	out := []ManifestComponent{}
	for _, c := range in {
		out = append(out, ManifestComponent{Name: c.Name, Constraint: c.Constraint, Version: c.Version, Source: c.Source, SHA256: c.SHA256, Parameters: c.Parameters})
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
