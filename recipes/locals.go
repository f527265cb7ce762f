package recipes

import (
	"fmt"
	"sort"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
)

// Local is one local value of a recipe's locals blocks, evaluated.
type Local struct {
	Name string
	// Value is the local's value as plain Go (see Recipe.Variables).
	Value any
	// Sensitive is true when the value is computed from a sensitive
	// variable (as Terraform marks them): it is shown as Redacted.
	Sensitive bool
	Range     Range // the local's name in its locals block
}

// localDecl is one argument of a locals block.
type localDecl struct {
	attr *hcl.Attribute
	deps []string // the locals it refers to, in order, without duplicates
}

// decodeLocals reads every locals block, evaluates the locals in the order
// their references require, and reports duplicates, references to locals
// that do not exist (with a suggestion) and cycles, each cycle once, by
// name and position. ctx has var and the functions; the returned local
// object is set in it. A local whose value has an error is unknown, so
// that what uses it is not reported again.
func decodeLocals(blocks []*hcl.Block, ctx *hcl.EvalContext) ([]Local, hcl.Diagnostics) {
	var diags hcl.Diagnostics
	byName := map[string]*localDecl{}
	var order []string
	for _, b := range blocks {
		attrs, d := b.Body.JustAttributes()
		diags = append(diags, d...)
		for _, a := range inOrder(attrs) {
			if first, dup := byName[a.Name]; dup {
				diags = append(diags, errorDiag(a.NameRange, "Duplicate local value",
					fmt.Sprintf("local.%s is already defined at %s. Rename or remove one of them.", a.Name, at(first.attr.NameRange))))
				continue
			}
			ld := &localDecl{attr: a}
			seen := map[string]bool{}
			for _, t := range a.Expr.Variables() {
				if t.RootName() != "local" || len(t) < 2 {
					continue
				}
				if step, ok := t[1].(hcl.TraverseAttr); ok && !seen[step.Name] {
					seen[step.Name] = true
					ld.deps = append(ld.deps, step.Name)
				}
			}
			byName[a.Name] = ld
			order = append(order, a.Name)
		}
	}

	values := map[string]cty.Value{}
	for _, n := range order {
		values[n] = cty.DynamicVal
	}
	// Depth-first, in declaration order: a local is evaluated after the
	// locals it refers to. state: 0 unvisited, 1 on the path, 2 done.
	state := map[string]int{}
	var path []string
	inCycle := map[string]bool{}
	var visit func(n string)
	visit = func(n string) {
		ld := byName[n]
		if ld == nil || state[n] == 2 {
			return
		}
		if state[n] == 1 {
			i := len(path) - 1
			for path[i] != n {
				i--
			}
			cycle := path[i:]
			reported := false
			for _, m := range cycle {
				reported = reported || inCycle[m]
				inCycle[m] = true
			}
			if !reported {
				diags = append(diags, cycleDiag(cycle, byName))
			}
			return
		}
		state[n] = 1
		path = append(path, n)
		for _, dep := range ld.deps {
			visit(dep)
		}
		path = path[:len(path)-1]
		state[n] = 2
		if inCycle[n] {
			return
		}
		ctx.Variables["local"] = cty.ObjectVal(values)
		v, d := ld.attr.Expr.Value(ctx)
		diags = append(diags, d...)
		if !d.HasErrors() {
			values[n] = v
		}
	}
	for _, n := range order {
		visit(n)
	}
	ctx.Variables["local"] = cty.ObjectVal(values)

	out := make([]Local, 0, len(order))
	for _, n := range order {
		v := values[n]
		out = append(out, Local{Name: n, Value: goValue(v), Sensitive: isSensitive(v), Range: toRange(byName[n].attr.NameRange)})
	}
	return out, diags
}

// inOrder lists attrs in the order they are written.
func inOrder(attrs hcl.Attributes) []*hcl.Attribute {
	list := make([]*hcl.Attribute, 0, len(attrs))
	for _, a := range attrs {
		list = append(list, a)
	}
	sort.Slice(list, func(i, j int) bool { return list[i].NameRange.Start.Byte < list[j].NameRange.Start.Byte })
	return list
}

// cycleDiag reports a cycle of locals at the first of them, naming each
// and where it is.
func cycleDiag(cycle []string, byName map[string]*localDecl) *hcl.Diagnostic {
	first := byName[cycle[0]].attr
	if len(cycle) == 1 {
		return errorDiag(first.NameRange, "Cycle in local values",
			fmt.Sprintf("local.%s refers to itself. A local value is computed from variables, functions and other locals, never from itself.", cycle[0]))
	}
	var steps []string
	for _, n := range cycle {
		steps = append(steps, fmt.Sprintf("local.%s (%s)", n, posOf(byName[n].attr.NameRange)))
	}
	steps = append(steps, "local."+cycle[0])
	return errorDiag(first.NameRange, "Cycle in local values",
		fmt.Sprintf("These locals refer to each other in a circle: %s refers to %s. Compute one of them without the others to break the cycle.", steps[0], strings.Join(steps[1:], ", which refers to ")))
}

// posOf formats r's start as file:line:col.
func posOf(r hcl.Range) string {
	return fmt.Sprintf("%s:%d:%d", r.Filename, r.Start.Line, r.Start.Column)
}
