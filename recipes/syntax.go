package recipes

import (
	"bytes"
	"fmt"
	"sort"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
)

// maxSyntaxErrors bounds how many syntax errors parseConfig looks for.
const maxSyntaxErrors = 10

// parseConfig parses src as HCL. HCL's parser stops reporting at the first
// syntax error of a file; parseConfig then blanks the offending line and
// parses again, up to maxSyntaxErrors times, to report the errors of the
// following lines too. It blanks only lines whose brackets balance, so
// that blanking cannot cause errors of its own; the first line it cannot
// blank ends the search. The returned file is the first parse's.
func parseConfig(src []byte, filename string) (*hcl.File, hcl.Diagnostics) {
	f, diags := hclsyntax.ParseConfig(src, filename, hcl.InitialPos)
	explainSyntax(diags)
	if !diags.HasErrors() {
		return f, diags
	}
	work := append([]byte(nil), src...)
	blanked := map[int]bool{}
	next := diags
	for n := 0; n < maxSyntaxErrors; n++ {
		line := firstErrorLine(next, blanked)
		if line == 0 || !blankLine(work, line) {
			break
		}
		blanked[line] = true
		_, next = hclsyntax.ParseConfig(work, filename, hcl.InitialPos)
		explainSyntax(next)
		added := false
		for _, d := range next {
			if d.Severity == hcl.DiagError && d.Subject != nil && !blanked[d.Subject.Start.Line] && !reported(diags, d) {
				diags = append(diags, d)
				added = true
			}
		}
		if !added {
			break
		}
	}
	sort.SliceStable(diags, func(i, j int) bool {
		return diagLine(diags[i]) < diagLine(diags[j])
	})
	return f, diags
}

func diagLine(d *hcl.Diagnostic) int {
	if d.Subject == nil {
		return 0
	}
	return d.Subject.Start.Line
}

func reported(diags hcl.Diagnostics, d *hcl.Diagnostic) bool {
	for _, o := range diags {
		if o.Summary == d.Summary && o.Subject != nil && d.Subject != nil && o.Subject.Start == d.Subject.Start {
			return true
		}
	}
	return false
}

// firstErrorLine is the line of the first error not on a blanked line, 0
// if none.
func firstErrorLine(diags hcl.Diagnostics, blanked map[int]bool) int {
	for _, d := range diags {
		if d.Severity == hcl.DiagError && d.Subject != nil && d.Subject.Start.Line > 0 && !blanked[d.Subject.Start.Line] {
			return d.Subject.Start.Line
		}
	}
	return 0
}

// blankLine replaces line (1-based) of src with spaces, keeping every byte
// offset, if its brackets balance outside strings and comments and it
// starts no heredoc.
func blankLine(src []byte, line int) bool {
	start := 0
	for l := 1; l < line; l++ {
		i := bytes.IndexByte(src[start:], '\n')
		if i < 0 {
			return false
		}
		start += i + 1
	}
	end := len(src)
	if i := bytes.IndexByte(src[start:], '\n'); i >= 0 {
		end = start + i
	}
	text := src[start:end]
	if !balanced(text) {
		return false
	}
	for i := range text {
		if text[i] != '\r' {
			text[i] = ' '
		}
	}
	return true
}

// balanced says whether the brackets of one line of HCL balance, ignoring
// quoted strings and comments, and whether it starts no heredoc.
func balanced(line []byte) bool {
	if bytes.Contains(line, []byte("<<")) {
		return false
	}
	depth := map[byte]int{}
	inString := false
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case inString && c == '\\':
			i++
		case c == '"':
			inString = !inString
		case inString:
		case c == '#' || (c == '/' && i+1 < len(line) && line[i+1] == '/'):
			i = len(line)
		case c == '{' || c == '[' || c == '(':
			depth[c]++
		case c == '}':
			depth['{']--
		case c == ']':
			depth['[']--
		case c == ')':
			depth['(']--
		}
	}
	return !inString && depth['{'] == 0 && depth['['] == 0 && depth['('] == 0
}

// explainSyntax adds what to do to HCL's syntax errors that do not say.
func explainSyntax(diags hcl.Diagnostics) {
	for _, d := range diags {
		if d.Summary == "Invalid single-argument block definition" && !strings.Contains(d.Detail, "own line") {
			d.Detail += " Write each argument on its own line:\n  partition \"ESP\" {\n    size = \"256MiB\"\n    type = \"esp\"\n  }\n`kiln fmt` lays a valid recipe out this way."
		}
	}
}

// references names what each root of a traversal holds, for messages.
var references = map[string]struct{ kind, hint string }{
	"var":   {"variable", "Declare it with a variable %q block, or correct the name."},
	"local": {"local value", "Define it in a locals block, such as locals { %s = \"...\" }, or correct the name."},
	"param": {"parameter", "Declare it with a parameter %q block in the component, or correct the name."},
}

// explainReferences turns HCL's "Unsupported attribute" for var.X,
// local.X and param.X, where X does not exist, into "Reference to
// undeclared ..." with the closest existing name.
func explainReferences(diags hcl.Diagnostics) {
	for _, d := range diags {
		if d.Summary != "Unsupported attribute" || d.Expression == nil || d.EvalContext == nil || d.Subject == nil {
			continue
		}
		st, ok := d.Expression.(*hclsyntax.ScopeTraversalExpr)
		if !ok || len(st.Traversal) < 2 {
			continue
		}
		step, ok := st.Traversal[1].(hcl.TraverseAttr)
		ref, known := references[st.Traversal.RootName()]
		if !ok || !known || step.SrcRange != *d.Subject {
			continue
		}
		var names []string
		for ctx := d.EvalContext; ctx != nil; ctx = ctx.Parent() {
			if obj, ok := ctx.Variables[st.Traversal.RootName()]; ok {
				if obj.Type().IsObjectType() {
					for n := range obj.Type().AttributeTypes() {
						names = append(names, n)
					}
				}
				break
			}
		}
		sort.Strings(names)
		root := st.Traversal.RootName()
		d.Summary = "Reference to undeclared " + ref.kind
		d.Detail = fmt.Sprintf("There is no %s named %q, so %s.%s has no value.%s %s", ref.kind, step.Name, root, step.Name,
			suggest(step.Name, names), fmt.Sprintf(ref.hint, step.Name))
	}
}

// unmarkedValue evaluates expr in ctx, without marks: what the decoders
// turn into Go values (sensitivity is tracked by Recipe.Sensitive).
func unmarkedValue(expr hcl.Expression, ctx *hcl.EvalContext) (cty.Value, hcl.Diagnostics) {
	v, diags := expr.Value(ctx)
	v, _ = v.UnmarkDeep()
	return v, diags
}
