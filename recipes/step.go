package recipes

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"time"

	"github.com/hashicorp/hcl/v2"

	"github.com/kiln-build/kiln/components"
)

// stepSchemas maps each supported step type (a build or test block's first
// label) to the schema of its body.
var stepSchemas = map[string]*hcl.BodySchema{
	"shell": shellStepSchema,
}

// supportedStepTypes lists stepSchemas' keys for messages.
var supportedStepTypes = []string{"shell"}

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
	kind      string // "build" or "test"
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
	typ := block.Labels[0]
	schema, ok := stepSchemas[typ]
	if !ok {
		return nil, hcl.Diagnostics{errorDiag(block.LabelRanges[0], "Unsupported step type",
			fmt.Sprintf("Kiln cannot run %q steps. Supported step types: %s; write %s %q %q { ... }.", typ, quoteList(supportedStepTypes), block.Type, supportedStepTypes[0], block.Labels[1]))}
	}
	content, diags := block.Body.Content(schema)
	s := &stepBlock{
		Step: Step{Type: typ, Name: block.Labels[1], Environment: map[string]string{}, Timeout: defaultTimeout, Range: toRange(block.DefRange)},
		src:  newDecoded(block.Type, block.DefRange, content.Attributes),
		kind: block.Type, nameRange: block.LabelRanges[1], dir: d.dir,
	}
	d.getDuration(s.src, timeoutArg, &s.Timeout, &diags)
	d.decodePolicy(s, &diags)
	if typ != components.KindShell {
		d.decodeAction(s, &diags)
		return s, diags
	}
	d.getStrList(s.src, inlineArg, &s.Inline, nil, &diags)
	d.getStr(s.src, scriptArg, &s.Script, &diags)
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
	if s.Type != components.KindShell {
		return append(diags, s.validateAction(d)...)
	}
	defer func() {
		s.Action = components.Action{Kind: components.KindShell, Shell: &components.Shell{Inline: s.Inline, Script: s.Script}}
	}()
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
	if _, ok := s.src.valid("inline"); ok && len(s.Inline) == 0 {
		diags = append(diags, errorDiag(inline.Expr.Range(), "No inline commands",
			fmt.Sprintf("inline is empty, so this step would do nothing. Add commands, such as inline = %s, or remove the step.", inlineArg.example)))
	}
	if _, ok := s.src.valid("script"); ok && !hasInline {
		path := s.Script
		if !filepath.IsAbs(path) {
			path = filepath.Join(s.dir, path)
		}
		switch fi, err := os.Stat(path); {
		case s.Script == "" || err != nil:
			diags = append(diags, errorDiag(script.Expr.Range(), "Script file not found",
				fmt.Sprintf("There is no file %q. Script paths are relative to the recipe's directory (%s); check the path.", path, s.dir)))
		case !fi.Mode().IsRegular():
			diags = append(diags, errorDiag(script.Expr.Range(), "Script is not a file",
				fmt.Sprintf("%q is not a regular file. Point script at a shell script file.", path)))
		default:
			s.Script = path
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
