package recipes

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"time"

	"github.com/hashicorp/hcl/v2"
)

// Step is a build, validate or test step: what it does (Action) and how it
// is run (Policy). Package components compiles it into a script.
type Step struct {
	Name        string // "COMPONENT/STEP" for a component's steps
	Action      Action
	Environment map[string]string // extra environment of a shell step; empty for the others
	Policy
	Component string // the component the step comes from; "" for the image's own steps
	Range     Range
}

// Policy is what every step has, whatever its action.
type Policy struct {
	Timeout   time.Duration // per attempt
	Retries   int           // extra attempts after a failure
	OnFailure OnFailure
	// NoCache (cache = false) keeps a build step's tree out of the layer
	// cache: the step reads the network or the time, so it reruns on every
	// build, and so does every build step after it.
	NoCache bool
}

// OnFailure is what happens when a step still fails after its retries.
type OnFailure string

const (
	Abort    OnFailure = "abort"    // the default: the build (or test) fails
	Continue OnFailure = "continue" // the failure is logged and the next step runs
)

// stepSchemas maps each supported step type (a build or test block's first
// label) to the schema of its body.
var stepSchemas = map[ActionKind]*hcl.BodySchema{
	KindShell: shellStepSchema,
}

// shellStepSchema is a shell step: commands run by /bin/sh, in the image
// tree (build) or in the booted image (test).
var shellStepSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{{Name: "inline"}, {Name: "script"}, {Name: "environment"}, {Name: "timeout"}},
}

var (
	inlineArg      = arg{"inline", `["apt-get install -y curl"]`, false}
	scriptArg      = arg{"script", `"scripts/setup.sh"`, false}
	environmentArg = arg{"environment", `{ DEBIAN_FRONTEND = "noninteractive" }`, false}
	timeoutArg     = arg{"timeout", `"10m"`, false}
)

var (
	stepNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)
	envNameRE  = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
)

// stepBlock is a decoded build or test block.
type stepBlock struct {
	Step
	src       *decoded
	kind      string // "build", "validate" or "test"
	nameRange hcl.Range
	dir       string // the recipe's (or component's) directory, for script and source paths; "" for built-in components

	// Raw values of action arguments that validateAction converts.
	template, allowOutside bool
	mode                   string
}

// decodeStepBlock decodes a build or test block; defaultTimeout applies
// when it has no timeout. It returns nil for an unsupported step type, whose
// body it does not read.
func (d *decoder) decodeStepBlock(block *hcl.Block, defaultTimeout time.Duration) (*stepBlock, hcl.Diagnostics) {
	typ := ActionKind(block.Labels[0])
	schema, ok := stepSchemas[typ]
	if !ok {
		return nil, hcl.Diagnostics{errorDiag(block.LabelRanges[0], "Unsupported step type",
			fmt.Sprintf("Kiln cannot run %q steps. Supported step types: %s; write %s %q %q { ... }.", typ, quoteList(ActionKinds), block.Type, ActionKinds[0], block.Labels[1]))}
	}
	content, diags := block.Body.Content(schema)
	s := &stepBlock{
		Step: Step{Name: block.Labels[1], Action: Action{Kind: typ}, Environment: map[string]string{},
			Policy: Policy{Timeout: defaultTimeout}, Range: toRange(block.DefRange)},
		src:  newDecoded(block.Type, block.DefRange, content.Attributes),
		kind: block.Type, nameRange: block.LabelRanges[1], dir: d.dir,
	}
	d.getDuration(s.src, timeoutArg, &s.Timeout, &diags)
	d.decodePolicy(s, &diags)
	if typ != KindShell {
		d.decodeAction(s, &diags)
		return s, diags
	}
	sh := &Shell{}
	s.Action.Shell = sh
	d.getStrList(s.src, inlineArg, &sh.Inline, nil, &diags)
	d.getStr(s.src, scriptArg, &sh.Script, &diags)
	d.getStrMap(s.src, environmentArg, &s.Environment, &diags)
	return s, diags
}

// validate checks the decoded values, resolves the script's path against
// the recipe's directory and checks that the script exists.
func (s *stepBlock) validate(d *decoder) hcl.Diagnostics {
	var diags hcl.Diagnostics
	if !stepNameRE.MatchString(s.Name) {
		diags = append(diags, errorDiag(s.nameRange, "Invalid step name",
			fmt.Sprintf("%q cannot name a step: use 1 to 64 letters, digits, dots, dashes and underscores, starting with a letter or digit, such as \"install-curl\".", s.Name)))
	}
	diags = append(diags, s.validatePolicy()...)
	if s.Action.Kind != KindShell {
		return append(diags, s.validateAction(d)...)
	}
	sh := s.Action.Shell
	inline, hasInline := s.src.attrs["inline"], s.src.attrs["inline"] != nil
	script, hasScript := s.src.attrs["script"], s.src.attrs["script"] != nil
	switch {
	case hasInline && hasScript:
		diags = append(diags, errorDiag(script.NameRange, "Both inline and script are set",
			fmt.Sprintf("A %s step runs either inline commands or a script file, not both. Remove inline (at %s) or script.", s.kind, at(inline.NameRange))))
	case !hasInline && !hasScript:
		diags = append(diags, errorDiag(s.src.def, "Missing inline or script",
			fmt.Sprintf("A %s step needs either inline = %s or script = %s.", s.kind, inlineArg.example, scriptArg.example)))
	}
	if _, ok := s.src.valid("inline"); ok && len(sh.Inline) == 0 {
		diags = append(diags, errorDiag(inline.Expr.Range(), "No inline commands",
			fmt.Sprintf("inline is empty, so this step would do nothing. Add commands, such as inline = %s, or remove the step.", inlineArg.example)))
	}
	if _, ok := s.src.valid("script"); ok && !hasInline {
		path := sh.Script
		if !filepath.IsAbs(path) {
			path = filepath.Join(s.dir, path)
		}
		switch fi, err := os.Stat(path); {
		case sh.Script == "" || err != nil:
			diags = append(diags, errorDiag(script.Expr.Range(), "Script file not found",
				fmt.Sprintf("There is no file %q. Script paths are relative to the recipe's directory (%s); check the path.", path, s.dir)))
		case !fi.Mode().IsRegular():
			diags = append(diags, errorDiag(script.Expr.Range(), "Script is not a file",
				fmt.Sprintf("%q is not a regular file. Point script at a shell script file.", path)))
		default:
			sh.Script = path
		}
	}
	if a, ok := s.src.valid("environment"); ok {
		names := make([]string, 0, len(s.Environment))
		for k := range s.Environment {
			names = append(names, k)
		}
		sort.Strings(names)
		for _, k := range names {
			if !envNameRE.MatchString(k) {
				diags = append(diags, errorDiag(a.Expr.Range(), "Invalid environment variable name",
					fmt.Sprintf("%q cannot be an environment variable name: use letters, digits and underscores, not starting with a digit, such as %s.", k, environmentArg.example)))
			}
		}
	}
	return diags
}
