package recipes

import (
	"fmt"
	"io/fs"
	"math/big"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"

	"github.com/kiln-build/kiln/internal/units"
)

// decoder evaluates the image's arguments. ctx holds var and the functions;
// dir is the recipe's directory, against which script paths resolve.
type decoder struct {
	ctx *hcl.EvalContext
	dir string

	files      *Files   // where component files and templates are recorded for diagnostics
	builtin    fs.FS    // the built-in component library (LoadOptions.Library); nil: none
	lib        *library // the component library, loaded at the first component block
	paths      []string // the kiln block's component_paths, absolute
	pathsRange hcl.Range
	log        *readLog // what expressions read (file(), timestamp()); shared by the recipe and its components
}

// arg describes one argument for the diagnostics about its value: its name
// and an example of a valid value, both as written in a recipe.
type arg struct {
	name     string
	example  string
	required bool
}

// decoded records where a block and its arguments are, and which arguments
// were decoded to a value, so that validation checks only those and points
// at each one.
type decoded struct {
	kind  string // the block type, for messages
	def   hcl.Range
	attrs hcl.Attributes
	ok    map[string]bool
}

func newDecoded(kind string, def hcl.Range, attrs hcl.Attributes) *decoded {
	return &decoded{kind: kind, def: def, attrs: attrs, ok: map[string]bool{}}
}

// valid returns the named argument's attribute (nil if absent) and whether
// it was decoded to a value.
func (s *decoded) valid(name string) (*hcl.Attribute, bool) {
	return s.attrs[name], s.ok[name]
}

// attr looks up a's attribute, reporting it missing when a is required.
func (s *decoded) attr(a arg, diags *hcl.Diagnostics) *hcl.Attribute {
	attr := s.attrs[a.name]
	if attr == nil && a.required {
		*diags = append(*diags, errorDiag(s.def, "Missing required argument",
			fmt.Sprintf("The %s block needs a %q argument: add %s = %s to it.", s.kind, a.name, a.name, a.example)))
	}
	return attr
}

// The get* helpers decode argument a of s into dst, which keeps its default
// unless the argument is set to a valid value, and append any problem to
// diags.

func (d *decoder) getStr(s *decoded, a arg, dst *string, diags *hcl.Diagnostics) {
	v, ok, dd := d.str(s.attr(a, diags), a)
	*diags = append(*diags, dd...)
	if ok {
		*dst, s.ok[a.name] = v, true
	}
}

// getName is getStr for a named string type (a firmware, a table, a
// failure policy); whether the value is one of the type's names is checked
// by the block's validate.
func getName[T ~string](d *decoder, s *decoded, a arg, dst *T, diags *hcl.Diagnostics) {
	v := string(*dst)
	d.getStr(s, a, &v, diags)
	*dst = T(v)
}

func (d *decoder) getStrList(s *decoded, a arg, dst *[]string, ranges *[]hcl.Range, diags *hcl.Diagnostics) {
	v, r, ok, dd := d.strList(s.attr(a, diags), a)
	*diags = append(*diags, dd...)
	if ok {
		*dst, s.ok[a.name] = v, true
		if ranges != nil {
			*ranges = r
		}
	}
}

func (d *decoder) getStrMap(s *decoded, a arg, dst *map[string]string, diags *hcl.Diagnostics) {
	v, ok, dd := d.strMap(s.attr(a, diags), a)
	*diags = append(*diags, dd...)
	if ok {
		*dst, s.ok[a.name] = v, true
	}
}

func (d *decoder) getSize(s *decoded, a arg, dst *uint64, diags *hcl.Diagnostics) {
	v, ok, dd := d.size(s.attr(a, diags), a)
	*diags = append(*diags, dd...)
	if ok {
		*dst, s.ok[a.name] = v, true
	}
}

func (d *decoder) getDuration(s *decoded, a arg, dst *time.Duration, diags *hcl.Diagnostics) {
	v, ok, dd := d.duration(s.attr(a, diags), a)
	*diags = append(*diags, dd...)
	if ok {
		*dst, s.ok[a.name] = v, true
	}
}

// value evaluates attr and converts it to ty. ok is false when attr is nil,
// when its value is null or not known (it depends on a variable that has an
// error of its own, already reported), or when it is invalid (reported in
// diags). want describes ty for the type error, such as "a list of strings".
func (d *decoder) value(attr *hcl.Attribute, a arg, ty cty.Type, want string) (cty.Value, bool, hcl.Diagnostics) {
	if attr == nil {
		return cty.NilVal, false, nil
	}
	v, diags := unmarkedValue(attr.Expr, d.ctx)
	if diags.HasErrors() {
		return cty.NilVal, false, diags
	}
	if v.IsNull() && a.required {
		return cty.NilVal, false, append(diags, errorDiag(attr.Expr.Range(), "Missing required argument",
			fmt.Sprintf("%q cannot be null: give it a value, such as %s = %s.", a.name, a.name, a.example)))
	}
	if !v.IsWhollyKnown() || v.IsNull() {
		return cty.NilVal, false, diags
	}
	cv, err := convert.Convert(v, ty)
	if err != nil {
		return cty.NilVal, false, append(diags, errorDiag(attr.Expr.Range(), "Incorrect attribute value type",
			fmt.Sprintf("The %q argument must be %s, such as %s = %s; this is %s.", a.name, want, a.name, a.example, friendlyType(v.Type()))))
	}
	return cv, true, diags
}

func friendlyType(t cty.Type) string {
	switch {
	case t == cty.String:
		return "a string"
	case t == cty.Number:
		return "a number"
	case t == cty.Bool:
		return "a bool"
	case t.IsTupleType(), t.IsListType(), t.IsSetType():
		return "a list"
	case t.IsObjectType(), t.IsMapType():
		return "a map"
	}
	return t.FriendlyName()
}

// str evaluates a string argument.
func (d *decoder) str(attr *hcl.Attribute, a arg) (string, bool, hcl.Diagnostics) {
	v, ok, diags := d.value(attr, a, cty.String, "a string")
	if !ok {
		return "", false, diags
	}
	return v.AsString(), true, diags
}

// strList evaluates a list of strings and also returns the range of each
// element: the element's own expression when the list is written out as
// [...], else the whole argument's.
func (d *decoder) strList(attr *hcl.Attribute, a arg) ([]string, []hcl.Range, bool, hcl.Diagnostics) {
	v, ok, diags := d.value(attr, a, cty.List(cty.String), "a list of strings")
	if !ok {
		return nil, nil, false, diags
	}
	elems := v.AsValueSlice()
	exprs, ediags := hcl.ExprList(attr.Expr)
	exact := !ediags.HasErrors() && len(exprs) == len(elems)
	out := make([]string, len(elems))
	ranges := make([]hcl.Range, len(elems))
	for i, el := range elems {
		ranges[i] = attr.Expr.Range()
		if exact {
			ranges[i] = exprs[i].Range()
		}
		if el.IsNull() {
			diags = append(diags, errorDiag(ranges[i], "Null list element",
				fmt.Sprintf("Element %d of %q is null; remove it or give a string.", i+1, a.name)))
			ok = false
			continue
		}
		out[i] = el.AsString()
	}
	if !ok {
		return nil, nil, false, diags
	}
	return out, ranges, true, diags
}

// strMap evaluates a map of strings.
func (d *decoder) strMap(attr *hcl.Attribute, a arg) (map[string]string, bool, hcl.Diagnostics) {
	v, ok, diags := d.value(attr, a, cty.Map(cty.String), "a map of strings")
	if !ok {
		return nil, false, diags
	}
	out := map[string]string{}
	for k, el := range v.AsValueMap() {
		if el.IsNull() {
			diags = append(diags, errorDiag(attr.Expr.Range(), "Null map value",
				fmt.Sprintf("The value of %q in %q is null; remove the key or give a string.", k, a.name)))
			ok = false
			continue
		}
		out[k] = el.AsString()
	}
	return out, ok, diags
}

// size evaluates a size: a string such as "2GiB" (see units.ParseSize) or a
// whole number of bytes.
func (d *decoder) size(attr *hcl.Attribute, a arg) (uint64, bool, hcl.Diagnostics) {
	v, ok, diags := d.value(attr, a, cty.DynamicPseudoType, "")
	if !ok {
		return 0, false, diags
	}
	invalid := func(why string) (uint64, bool, hcl.Diagnostics) {
		detail := why + "."
		if !strings.Contains(why, "; write ") {
			detail += fmt.Sprintf(" Write a size such as %s, \"512MiB\" or \"1.5GiB\" (units %s), or a whole number of bytes.", a.example, "B, KiB, MiB, GiB, TiB: powers of 1024")
		}
		return 0, false, append(diags, errorDiag(attr.Expr.Range(), "Invalid size", detail))
	}
	switch v.Type() {
	case cty.String:
		n, err := units.ParseSize(v.AsString())
		if err != nil {
			return invalid(capitalize(err.Error()))
		}
		return n, true, diags
	case cty.Number:
		bf := v.AsBigFloat()
		if bf.Sign() < 0 || !bf.IsInt() {
			return invalid(fmt.Sprintf("%s is not a whole, non-negative number of bytes", bf.Text('g', 10)))
		}
		n, acc := bf.Uint64()
		if acc != big.Exact {
			return invalid(fmt.Sprintf("%s bytes does not fit in 64 bits", bf.Text('g', 10)))
		}
		return n, true, diags
	}
	return 0, false, append(diags, errorDiag(attr.Expr.Range(), "Incorrect attribute value type",
		fmt.Sprintf("The %q argument must be a size string, such as %s = %s, or a number of bytes; this is %s.", a.name, a.name, a.example, friendlyType(v.Type()))))
}

// duration evaluates a Go duration string such as "10m" or "1h30m".
func (d *decoder) duration(attr *hcl.Attribute, a arg) (time.Duration, bool, hcl.Diagnostics) {
	s, ok, diags := d.str(attr, a)
	if !ok {
		return 0, false, diags
	}
	dur, err := time.ParseDuration(s)
	if err != nil || dur <= 0 {
		return 0, false, append(diags, errorDiag(attr.Expr.Range(), "Invalid timeout",
			fmt.Sprintf("%q is not a positive duration. Write a duration such as %s, \"90s\" or \"1h30m\" (units: s, m, h).", s, a.example)))
	}
	return dur, true, diags
}

func capitalize(s string) string {
	if s == "" {
		return s
	}
	if c := s[0]; c >= 'a' && c <= 'z' {
		return string(c-'a'+'A') + s[1:]
	}
	return s
}

func contains[T comparable](list []T, s T) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// quoteList formats list as "a", "b" or "c".
func quoteList[T ~string](list []T) string {
	q := make([]string, len(list))
	for i, s := range list {
		q[i] = fmt.Sprintf("%q", s)
	}
	if len(q) < 2 {
		return strings.Join(q, "")
	}
	return strings.Join(q[:len(q)-1], ", ") + " or " + q[len(q)-1]
}

// getInt decodes a whole-number argument.
func (d *decoder) getInt(s *decoded, a arg, dst *int, diags *hcl.Diagnostics) {
	attr := s.attr(a, diags)
	v, ok, dd := d.value(attr, a, cty.Number, "a whole number")
	*diags = append(*diags, dd...)
	if !ok {
		return
	}
	bf := v.AsBigFloat()
	n, acc := bf.Int64()
	if !bf.IsInt() || acc != big.Exact || n > 1<<31 || n < -(1<<31) {
		*diags = append(*diags, errorDiag(attr.Expr.Range(), "Incorrect attribute value type",
			fmt.Sprintf("The %q argument must be a whole number, such as %s = %s.", a.name, a.name, a.example)))
		return
	}
	*dst, s.ok[a.name] = int(n), true
}

// getBool decodes a bool argument.
func (d *decoder) getBool(s *decoded, a arg, dst *bool, diags *hcl.Diagnostics) {
	v, ok, dd := d.value(s.attr(a, diags), a, cty.Bool, "true or false")
	*diags = append(*diags, dd...)
	if ok {
		*dst, s.ok[a.name] = v.True(), true
	}
}
