package recipes

import (
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
)

// maxNumberExp bounds number literals to magnitudes between 2^-256 and
// 2^256 (about 10^-77 and 10^77), or zero. Turning a number into text, which
// HCL does for "${n}" and for a number given where a string is expected,
// takes time and memory that grow with its exponent: 1e99999999 would take
// minutes. No recipe needs such numbers; sizes stop at 2^64.
const maxNumberExp = 256

// checkNumbers reports every number literal in n outside that range, and
// every string literal that reads as such a number (HCL converts strings to
// numbers where a number is needed). It runs before anything is evaluated.
func checkNumbers(n hclsyntax.Node) hcl.Diagnostics {
	var diags hcl.Diagnostics
	hclsyntax.VisitAll(n, func(n hclsyntax.Node) hcl.Diagnostics {
		if lit, ok := n.(*hclsyntax.LiteralValueExpr); ok && !numberInRange(lit.Val) {
			diags = append(diags, numberOutOfRange(lit.SrcRange))
		}
		return nil
	})
	return diags
}

// numberInRange says whether v is not a number (nor a string that reads as
// a number) outside the range maxNumberExp allows.
func numberInRange(v cty.Value) bool {
	if !v.IsKnown() || v.IsNull() {
		return true
	}
	switch v.Type() {
	case cty.String:
		s := v.AsString()
		if len(s) < 4 || !strings.ContainsAny(s, "eE") {
			return true // too short for an exponent that matters
		}
		n, err := cty.ParseNumberVal(s)
		if err != nil {
			return true
		}
		v = n
	case cty.Number:
	default:
		return true
	}
	bf := v.AsBigFloat()
	if bf.IsInf() {
		return false
	}
	if bf.Sign() == 0 {
		return true
	}
	exp := bf.MantExp(nil)
	return exp <= maxNumberExp && exp >= -maxNumberExp
}

func numberOutOfRange(rng hcl.Range) *hcl.Diagnostic {
	return errorDiag(rng, "Number out of range",
		"Numbers in a recipe must be zero or between about 1e-77 and 1e77 in magnitude. Write a smaller number; for sizes, use a string such as \"2GiB\".")
}
