package recipes

import (
	"fmt"
	"math"
	"math/big"
	"os"
	"sort"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	hcljson "github.com/hashicorp/hcl/v2/json"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
	"github.com/zclconf/go-cty/cty/function"

	"github.com/kiln-build/kiln/internal/didyoumean"
)

// variableBlockSchema is a variable block: an input of the recipe.
var variableBlockSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{{Name: "default"}, {Name: "type"}, {Name: "description"}, {Name: "sensitive"}},
	Blocks:     []hcl.BlockHeaderSchema{{Type: "validation"}},
}

// validationBlockSchema is a variable's validation block.
var validationBlockSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{{Name: "condition"}, {Name: "error_message"}},
}

// envPrefix is the prefix of the environment variables that set recipe
// variables: KILN_VAR_suite=trixie sets var.suite.
const envPrefix = "KILN_VAR_"

// variableBlock is a decoded variable block.
type variableBlock struct {
	Name        string
	Description string
	// Type is the declared type; cty.DynamicPseudoType for "any" or when
	// there is no type argument (typed says which).
	Type  cty.Type
	typed bool
	// Default is cty.NilVal when there is no default (the variable is required).
	Default cty.Value
	// Sensitive is sensitive = true: the value is never shown or recorded.
	Sensitive bool
	// Validations are the validation blocks, in order.
	Validations []*validationRule

	def, nameRange hcl.Range
	typeExpr       hcl.Expression // nil without a type argument
	defaultRange   hcl.Range
}

// validationRule is a validation block: the value is valid when condition
// is true; otherwise error_message says what is wrong.
type validationRule struct {
	condition, message hcl.Expression
	def                hcl.Range
}

// rawText says whether a value given as text (-var, KILN_VAR_) is taken as
// the string it is, rather than parsed as an HCL expression.
func (v *variableBlock) rawText() bool { return !v.typed || v.Type == cty.String }

// decodeVariableBlock decodes a variable block. Its arguments are constants.
func decodeVariableBlock(block *hcl.Block) (*variableBlock, hcl.Diagnostics) {
	v := &variableBlock{Name: block.Labels[0], Type: cty.DynamicPseudoType, def: block.DefRange, nameRange: block.LabelRanges[0]}
	var diags hcl.Diagnostics
	if !hclsyntax.ValidIdentifier(v.Name) {
		diags = append(diags, errorDiag(v.nameRange, "Invalid variable name",
			fmt.Sprintf("%q cannot be used as var.%s: a variable name starts with a letter or underscore and has only letters, digits, underscores and dashes.", v.Name, v.Name)))
	}
	content, d := block.Body.Content(variableBlockSchema)
	diags = append(diags, d...)
	typeOK := true
	if attr := content.Attributes["type"]; attr != nil {
		v.typeExpr = attr.Expr
		ty, d := decodeTypeExpr(attr.Expr)
		diags = append(diags, d...)
		if d.HasErrors() {
			typeOK = false
		} else {
			v.Type, v.typed = ty, true
		}
	}
	if attr := content.Attributes["description"]; attr != nil {
		s, _, d := (&decoder{}).str(attr, arg{"description", `"Debian suite to bootstrap"`, false})
		diags = append(diags, d...)
		v.Description = s
	}
	if attr := content.Attributes["sensitive"]; attr != nil {
		val, d := attr.Expr.Value(nil)
		diags = append(diags, d...)
		if !d.HasErrors() {
			if b, err := convert.Convert(val, cty.Bool); err != nil || b.IsNull() || !b.IsKnown() {
				diags = append(diags, errorDiag(attr.Expr.Range(), "Invalid sensitive value",
					fmt.Sprintf("sensitive is true or false, without quotes: sensitive = true hides var.%s's value from the manifest, the logs and --json.", v.Name)))
			} else {
				v.Sensitive = b.True()
			}
		}
	}
	for _, b := range content.Blocks {
		vc, d := b.Body.Content(validationBlockSchema)
		diags = append(diags, d...)
		c, m := vc.Attributes["condition"], vc.Attributes["error_message"]
		if c != nil && m != nil {
			v.Validations = append(v.Validations, &validationRule{condition: c.Expr, message: m.Expr, def: b.DefRange})
			continue
		}
		if len(d) == 0 {
			missing := "condition"
			if c != nil {
				missing = "error_message"
			}
			diags = append(diags, errorDiag(b.DefRange, "Missing required argument",
				fmt.Sprintf("A validation block needs a condition and an error_message; this one has no %s. For example:\n  validation {\n    condition     = length(var.%s) > 0\n    error_message = \"var.%s cannot be empty.\"\n  }", missing, v.Name, v.Name)))
		}
	}
	if attr := content.Attributes["default"]; attr != nil {
		v.defaultRange = attr.Expr.Range()
		val, d := attr.Expr.Value(nil)
		diags = append(diags, d...)
		switch {
		case d.HasErrors():
			v.Default = cty.DynamicVal
		case !typeOK:
			v.Default = cty.DynamicVal
		default:
			cv, err := convert.Convert(val, v.Type)
			if err != nil {
				diags = append(diags, errorDiag(attr.Expr.Range(), "Invalid default value",
					fmt.Sprintf("var.%s is declared with type = %s, and its default cannot be converted to it: %s. Change the default or the type.", v.Name, typeString(v.Type), err)))
				cv = cty.DynamicVal
			}
			v.Default = cv
		}
	}
	return v, diags
}

// decodeTypeExpr reads a type constraint: string, number, bool, any, or
// list(T) and map(T) of one of those.
func decodeTypeExpr(expr hcl.Expression) (cty.Type, hcl.Diagnostics) {
	invalid := func(detail string) (cty.Type, hcl.Diagnostics) {
		return cty.DynamicPseudoType, hcl.Diagnostics{errorDiag(expr.Range(), "Invalid type constraint",
			detail+" The type is one of string, number, bool, list(string), map(string) and any, written without quotes: type = string.")}
	}
	switch kw := hcl.ExprAsKeyword(expr); kw {
	case "string":
		return cty.String, nil
	case "number":
		return cty.Number, nil
	case "bool":
		return cty.Bool, nil
	case "any":
		return cty.DynamicPseudoType, nil
	case "list", "map":
		return invalid(fmt.Sprintf("%s needs an element type, such as %s(string).", kw, kw))
	case "":
	default:
		return invalid(fmt.Sprintf("%q is not a type.", kw))
	}
	call, d := hcl.ExprCall(expr)
	if d.HasErrors() {
		if v, vd := expr.Value(nil); !vd.HasErrors() && v.Type() == cty.String && v.IsKnown() && !v.IsNull() {
			return invalid(fmt.Sprintf("The type is a keyword, not a string: write type = %s without quotes.", v.AsString()))
		}
		return invalid("This is not a type.")
	}
	if call.Name != "list" && call.Name != "map" {
		return invalid(fmt.Sprintf("%s(...) is not a type.", call.Name))
	}
	if len(call.Arguments) != 1 {
		return invalid(fmt.Sprintf("%s(...) takes exactly one element type, such as %s(string).", call.Name, call.Name))
	}
	elem, diags := decodeTypeExpr(call.Arguments[0])
	if diags.HasErrors() {
		return cty.DynamicPseudoType, diags
	}
	if call.Name == "list" {
		return cty.List(elem), nil
	}
	return cty.Map(elem), nil
}

// typeString writes a type as a recipe would.
func typeString(t cty.Type) string {
	switch {
	case t == cty.String:
		return "string"
	case t == cty.Number:
		return "number"
	case t == cty.Bool:
		return "bool"
	case t.IsListType():
		return "list(" + typeString(t.ElementType()) + ")"
	case t.IsMapType():
		return "map(" + typeString(t.ElementType()) + ")"
	}
	return "any"
}

// valueSource is where a variable's final value came from: its kind, for
// kiln inspect, and the range of the value's text, for diagnostics.
type valueSource struct {
	kind string // "default", "env", "auto-file", "var-file" or "var"
	rng  hcl.Range
}

// describe is the source as kiln inspect shows it.
func (s valueSource) describe(name string) string {
	switch s.kind {
	case "default":
		return "default"
	case "env":
		return envPrefix + name
	case "var":
		return "-var"
	case "var-file":
		return fmt.Sprintf("-var-file %s:%d", s.rng.Filename, s.rng.Start.Line)
	case "auto-file":
		return fmt.Sprintf("%s:%d", s.rng.Filename, s.rng.Start.Line)
	}
	return "not set"
}

// resolveVariables computes every variable's final value from, lowest
// precedence first: its default, KILN_VAR_<name> in opts.Env, the
// *.auto.kilnvars.hcl/.json files next to the recipe (opts.autoVarFiles,
// in lexical order), the -var-file files in order, and the -var options in
// order. A variable whose value has an error (already reported) is
// cty.DynamicVal, so expressions that use it are unknown and are not
// reported again.
func resolveVariables(vars []*variableBlock, opts LoadOptions, files *Files) (map[string]cty.Value, map[string]valueSource, hcl.Diagnostics) {
	var diags hcl.Diagnostics
	byName := map[string]*variableBlock{}
	values := map[string]cty.Value{}
	sources := map[string]valueSource{}
	var names []string
	for _, v := range vars {
		if first, dup := byName[v.Name]; dup {
			diags = append(diags, errorDiag(v.nameRange, "Duplicate variable",
				fmt.Sprintf("var.%s is already declared at %s. Rename or remove one of them.", v.Name, at(first.def))))
			continue
		}
		byName[v.Name] = v
		names = append(names, v.Name)
		if v.Default != cty.NilVal {
			values[v.Name] = v.Default
			sources[v.Name] = valueSource{"default", v.defaultRange}
		}
	}
	// set records a value; with d having errors, which the caller reports,
	// the value is unknown.
	set := func(v *variableBlock, val cty.Value, src valueSource, d hcl.Diagnostics) {
		if d.HasErrors() {
			val = cty.DynamicVal
		}
		values[v.Name] = val
		sources[v.Name] = src
	}

	// KILN_VAR_<name>: unknown names are ignored, the environment is shared.
	for _, kv := range opts.Env {
		name, text, ok := strings.Cut(kv, "=")
		if !ok || !strings.HasPrefix(name, envPrefix) {
			continue
		}
		name = strings.TrimPrefix(name, envPrefix)
		if v := byName[name]; v != nil {
			fn := addVarText(files, v, fmt.Sprintf("<value for var.%s from %s%s>", name, envPrefix, name), text)
			val, d := parseVarText(v, text, fn)
			diags = append(diags, d...)
			set(v, val, valueSource{"env", syntheticRange(fn, text)}, d)
		}
	}

	for _, path := range opts.autoVarFiles {
		diags = append(diags, readVarFile(path, "auto-file", byName, files, set)...)
	}
	for _, path := range opts.VarFiles {
		diags = append(diags, readVarFile(path, "var-file", byName, files, set)...)
	}

	for _, opt := range opts.Vars {
		name, text, ok := strings.Cut(opt, "=")
		if !ok || name == "" {
			fn := files.add("<-var option>", []byte(opt))
			diags = append(diags, errorDiag(syntheticRange(fn, opt), "Invalid -var option",
				fmt.Sprintf("-var %q is not of the form name=value. Write it as -var suite=trixie.", opt)))
			continue
		}
		v := byName[name]
		if v == nil {
			fn := files.add("<-var option>", []byte(opt))
			rng := syntheticRange(fn, name)
			diags = append(diags, errorDiag(rng, "Undeclared variable",
				fmt.Sprintf("-var sets %q, but the recipe declares no variable %q.%s Declare it with a variable %q block, or remove the -var option.", name, name, suggest(name, names), name)))
			continue
		}
		fn := addVarText(files, v, fmt.Sprintf("<value for var.%s>", name), text)
		val, d := parseVarText(v, text, fn)
		diags = append(diags, d...)
		set(v, val, valueSource{"var", syntheticRange(fn, text)}, d)
	}

	for _, name := range names {
		if _, ok := values[name]; !ok {
			v := byName[name]
			diags = append(diags, errorDiag(v.def, "No value for required variable",
				fmt.Sprintf("var.%s has no default and no value was given. Set it with -var %s=VALUE, in a -var-file or a *.auto.kilnvars.hcl file next to the recipe, or with the %s%s environment variable, or give it a default.", name, name, envPrefix, name)))
			values[name] = cty.DynamicVal
		}
	}
	return values, sources, diags
}

// addVarText records the text of a -var or KILN_VAR_ value for diagnostics,
// except a sensitive variable's, which no diagnostic may quote.
func addVarText(files *Files, v *variableBlock, name, text string) string {
	if v.Sensitive {
		return name
	}
	return files.add(name, []byte(text))
}

// parseVarText turns the text of a -var or KILN_VAR_ value into the
// variable's value: the text itself for string (and untyped) variables,
// otherwise the text parsed as an HCL expression, such as ["a", "b"].
func parseVarText(v *variableBlock, text, filename string) (cty.Value, hcl.Diagnostics) {
	if v.rawText() {
		val := cty.StringVal(text)
		if !numberInRange(val) {
			return cty.DynamicVal, hcl.Diagnostics{numberOutOfRange(syntheticRange(filename, text))}
		}
		return val, nil
	}
	expr, diags := hclsyntax.ParseExpression([]byte(text), filename, hcl.InitialPos)
	if expr != nil {
		if nd := checkNumbers(expr); nd.HasErrors() {
			return cty.DynamicVal, nd
		}
	}
	if !diags.HasErrors() {
		val, d := expr.Value(nil)
		if !d.HasErrors() {
			return convertVar(v, val, expr.Range(), append(diags, d...))
		}
	}
	// HCL's own message ("Variables not allowed" for a bare word, "Missing
	// expression" for a cut-off list) would puzzle on a command line.
	shown := fmt.Sprintf("%q", text)
	if v.Sensitive {
		shown = "The value (sensitive, not shown)"
	}
	return cty.DynamicVal, hcl.Diagnostics{errorDiag(syntheticRange(filename, text), "Invalid value for variable",
		fmt.Sprintf("%s cannot be read as a value of type %s. var.%s is declared with type = %s, so its value is read as an HCL expression, such as %s; quote the shell argument so that the quotes and brackets reach Kiln.",
			shown, typeString(v.Type), v.Name, typeString(v.Type), typeExample(v.Type)))}
}

// typeExample is a value of type t as written in HCL.
func typeExample(t cty.Type) string {
	switch {
	case t == cty.Number:
		return "42"
	case t == cty.Bool:
		return "true"
	case t.IsListType():
		return "[" + typeExample(t.ElementType()) + "]"
	case t.IsMapType():
		return "{ key = " + typeExample(t.ElementType()) + " }"
	}
	return `"text"`
}

func convertVar(v *variableBlock, val cty.Value, rng hcl.Range, diags hcl.Diagnostics) (cty.Value, hcl.Diagnostics) {
	cv, err := convert.Convert(val, v.Type)
	if err != nil {
		return cty.DynamicVal, append(diags, errorDiag(rng, "Invalid value for variable",
			fmt.Sprintf("var.%s is declared with type = %s, and this value cannot be converted to it: %s. Give a %s value.", v.Name, typeString(v.Type), err, typeString(v.Type))))
	}
	return cv, diags
}

// readVarFile reads a variables file: HCL whose top-level arguments set
// variables, or (for a .json file) a JSON object whose properties do. kind
// is "var-file" for -var-file, "auto-file" for *.auto.kilnvars.* files.
func readVarFile(path, kind string, byName map[string]*variableBlock, files *Files, set func(*variableBlock, cty.Value, valueSource, hcl.Diagnostics)) hcl.Diagnostics {
	src, err := os.ReadFile(path)
	if err != nil {
		hint := "Check the -var-file path; relative paths are relative to the working directory."
		if kind == "auto-file" {
			hint = "Kiln reads every *.auto.kilnvars.hcl and *.auto.kilnvars.json file next to the recipe; fix its permissions or move it away."
		}
		return hcl.Diagnostics{errorDiag(fileStart(path), "Cannot read variables file", fmt.Sprintf("%v. %s", err, hint))}
	}
	files.add(path, src)
	var f *hcl.File
	var diags hcl.Diagnostics
	isJSON := strings.HasSuffix(path, ".json")
	if isJSON {
		f, diags = hcljson.Parse(src, path)
	} else {
		f, diags = parseConfig(src, path)
	}
	if f == nil || f.Body == nil {
		return diags
	}
	if body, ok := f.Body.(*hclsyntax.Body); ok {
		diags = append(diags, checkNumbers(body)...)
	}
	if diags.HasErrors() {
		return diags
	}
	attrs, d := f.Body.JustAttributes()
	diags = append(diags, d...)
	list := inOrder(attrs)
	var names []string
	for n := range byName {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, a := range list {
		v := byName[a.Name]
		if v == nil {
			diags = append(diags, errorDiag(a.NameRange, "Undeclared variable",
				fmt.Sprintf("This file sets %q, but the recipe declares no variable %q.%s Declare it with a variable %q block, or remove it from this file.", a.Name, a.Name, suggest(a.Name, names), a.Name)))
			continue
		}
		val, d := a.Expr.Value(nil)
		if !d.HasErrors() && isJSON {
			d = checkValueNumbers(val, a.Expr.Range())
		}
		if !d.HasErrors() {
			val, d = convertVar(v, val, a.Expr.Range(), d)
		}
		diags = append(diags, d...)
		set(v, val, valueSource{kind, a.Expr.Range()}, d)
	}
	return diags
}

// checkValueNumbers is checkNumbers for a value that did not come from HCL
// native syntax (a JSON var file): every number and numeric string in it.
func checkValueNumbers(v cty.Value, rng hcl.Range) hcl.Diagnostics {
	bad := false
	cty.Walk(v, func(_ cty.Path, el cty.Value) (bool, error) {
		if !numberInRange(el) {
			bad = true
		}
		return !bad, nil
	})
	if bad {
		return hcl.Diagnostics{numberOutOfRange(rng)}
	}
	return nil
}

// declaredVariables describes vars for Recipe.Declared.
func declaredVariables(vars []*variableBlock, sources map[string]valueSource) []Variable {
	out := []Variable{}
	seen := map[string]bool{}
	for _, v := range vars {
		if seen[v.Name] {
			continue
		}
		seen[v.Name] = true
		t := ""
		if v.typed {
			t = typeString(v.Type)
		}
		out = append(out, Variable{Name: v.Name, Type: t, Description: v.Description, Sensitive: v.Sensitive,
			Source: sources[v.Name].describe(v.Name), Range: toRange(v.def)})
	}
	return out
}

// validateVariables checks each variable's value against its validation
// blocks, in the scope of every variable's value and the functions. A
// failure points at where the value came from (the default, the -var, the
// line of the var file) and shows the error_message.
func validateVariables(vars []*variableBlock, values map[string]cty.Value, sources map[string]valueSource, ctx *hcl.EvalContext) hcl.Diagnostics {
	var diags hcl.Diagnostics
	done := map[string]bool{}
	for _, v := range vars {
		if done[v.Name] {
			continue // a duplicate, reported
		}
		done[v.Name] = true
		val := values[v.Name]
		if !val.IsWhollyKnown() {
			continue // its own error is reported
		}
		for _, rule := range v.Validations {
			diags = append(diags, rule.check(v, sources[v.Name], ctx)...)
		}
	}
	return diags
}

func (rule *validationRule) check(v *variableBlock, src valueSource, ctx *hcl.EvalContext) hcl.Diagnostics {
	result, diags := rule.condition.Value(ctx)
	if diags.HasErrors() {
		return diags
	}
	result, _ = result.UnmarkDeep()
	if !result.IsKnown() {
		return diags
	}
	if result.IsNull() || !result.Type().Equals(cty.Bool) {
		if cv, err := convert.Convert(result, cty.Bool); err != nil || cv.IsNull() {
			return append(diags, errorDiag(rule.condition.Range(), "Invalid validation condition",
				fmt.Sprintf("A validation condition is true or false; this is %s. Write a comparison such as condition = length(var.%s) > 0, or use can(...).", friendlyType(result.Type()), v.Name)))
		} else {
			result = cv
		}
	}
	if result.True() {
		return diags
	}
	msg, md := rule.message.Value(ctx)
	if md.HasErrors() {
		return append(diags, md...)
	}
	text := "The value does not pass this variable's validation."
	switch {
	case isSensitive(msg):
		text = "The error message is hidden because it uses a sensitive value."
	default:
		msg, _ = msg.UnmarkDeep()
		if s, err := convert.Convert(msg, cty.String); err == nil && s.IsKnown() && !s.IsNull() && strings.TrimSpace(s.AsString()) != "" {
			text = strings.TrimSpace(s.AsString())
		} else {
			return append(diags, errorDiag(rule.message.Range(), "Invalid error_message",
				"error_message is a non-empty string that says what is wrong with the value and what to give instead."))
		}
	}
	subject := src.rng
	if subject.Filename == "" {
		subject = v.def
	}
	where := map[string]string{"default": "its default", "env": "the environment", "var": "a -var option", "var-file": "a -var-file", "auto-file": "an auto-loaded variables file"}[src.kind]
	return append(diags, errorDiag(subject, "Invalid value for variable",
		fmt.Sprintf("%s\n\nThe value of var.%s (from %s) fails the validation rule at %s.", text, v.Name, where, at(rule.def))))
}

// evalContext is what recipe expressions see: var (sensitive values
// marked), local, and the functions.
func evalContext(vars []*variableBlock, values map[string]cty.Value, fns map[string]function.Function) *hcl.EvalContext {
	marked := make(map[string]cty.Value, len(values))
	for k, v := range values {
		marked[k] = v
	}
	for _, v := range vars {
		if v.Sensitive {
			if val, ok := marked[v.Name]; ok {
				marked[v.Name] = val.Mark(sensitiveMark)
			}
		}
	}
	return &hcl.EvalContext{
		Variables: map[string]cty.Value{"var": cty.ObjectVal(marked)},
		Functions: fns,
	}
}

// goValues converts the final variable values for Recipe.Variables.
func goValues(values map[string]cty.Value) map[string]any {
	out := make(map[string]any, len(values))
	for k, v := range values {
		out[k] = goValue(v)
	}
	return out
}

// goValue converts a value to plain Go: string, bool, int64 or float64
// (numbers too large for a float64 become their decimal text), []any,
// map[string]any, or nil.
func goValue(v cty.Value) any {
	v, _ = v.UnmarkDeep()
	if !v.IsKnown() || v.IsNull() {
		return nil
	}
	t := v.Type()
	switch {
	case t == cty.String:
		return v.AsString()
	case t == cty.Bool:
		return v.True()
	case t == cty.Number:
		bf := v.AsBigFloat()
		if bf.IsInt() {
			if i, acc := bf.Int64(); acc == big.Exact {
				return i
			}
		}
		if f, _ := bf.Float64(); !math.IsInf(f, 0) {
			return f
		}
		return bf.Text('g', 20)
	case t.IsListType(), t.IsSetType(), t.IsTupleType():
		out := []any{}
		for it := v.ElementIterator(); it.Next(); {
			_, e := it.Element()
			out = append(out, goValue(e))
		}
		return out
	case t.IsMapType(), t.IsObjectType():
		out := map[string]any{}
		for it := v.ElementIterator(); it.Next(); {
			k, e := it.Element()
			out[k.AsString()] = goValue(e)
		}
		return out
	}
	return nil
}

// suggest returns ` Did you mean "x"?` for the closest of names to given,
// or "" when none is close.
func suggest(given string, names []string) string {
	if best := didyoumean.Closest(given, names); best != "" {
		return fmt.Sprintf(" Did you mean %q?", best)
	}
	return ""
}
