package recipes

import "github.com/zclconf/go-cty/cty"

// mark is the type of the cty marks recipes puts on values.
type mark string

// sensitiveMark is on the value of every sensitive variable. cty carries
// marks through expressions and functions, so a local or a component
// parameter computed from a sensitive variable is sensitive too, as in
// Terraform.
const sensitiveMark = mark("sensitive")

// isSensitive says whether v or any value in it carries sensitiveMark.
func isSensitive(v cty.Value) bool {
	_, marks := v.UnmarkDeep()
	_, ok := marks[sensitiveMark]
	return ok
}
