package recipes

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/hashicorp/hcl/v2"
)

// kilnBlockSchema is the kiln block: settings about the recipe itself.
var kilnBlockSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{{Name: "required_version"}, {Name: "component_paths"}},
}

// kilnBlock is a decoded kiln block.
type kilnBlock struct {
	RequiredVersion string // "" when not set
	ComponentPaths  []string
	pathsRange      hcl.Range

	def, versionRange hcl.Range
}

var componentPathsArg = arg{"component_paths", `["components"]`, false}

var requiredVersionArg = arg{"required_version", `">= ` + FormatVersion + `"`, false}

// decodeKilnBlock decodes a kiln block. Its arguments are constants: they
// are read before any variable exists.
func decodeKilnBlock(block *hcl.Block) (*kilnBlock, hcl.Diagnostics) {
	k := &kilnBlock{def: block.DefRange}
	content, diags := block.Body.Content(kilnBlockSchema)
	if attr := content.Attributes["required_version"]; attr != nil {
		s, ok, d := (&decoder{}).str(attr, requiredVersionArg)
		diags = append(diags, d...)
		if ok {
			k.RequiredVersion, k.versionRange = s, attr.Expr.Range()
		}
	}
	if attr := content.Attributes["component_paths"]; attr != nil {
		l, _, ok, d := (&decoder{}).strList(attr, componentPathsArg)
		diags = append(diags, d...)
		if ok {
			k.ComponentPaths, k.pathsRange = l, attr.Expr.Range()
		}
	}
	return k, diags
}

// checkVersion checks the required_version constraint against format.
// unsatisfied is true when the constraint is valid but excludes format: the
// recipe is written for another version of the language, and errors about
// the rest of it would only be noise.
func (k *kilnBlock) checkVersion(format string) (diags hcl.Diagnostics, unsatisfied bool) {
	if k.RequiredVersion == "" {
		return nil, false
	}
	cs, err := parseConstraints(k.RequiredVersion)
	if err != nil {
		return hcl.Diagnostics{errorDiag(k.versionRange, "Invalid required_version",
			fmt.Sprintf("%s. Write one or more comma-separated constraints, each an operator (=, !=, >, >=, <, <=, ~>) and a version, such as %s.", capitalize(err.Error()), requiredVersionArg.example))}, false
	}
	have, _ := parseVersion(format)
	for _, c := range cs {
		if !c.allows(have) {
			return hcl.Diagnostics{errorDiag(k.versionRange, "Unsupported recipe format version",
				fmt.Sprintf("This recipe requires recipe format %q, but this Kiln reads format %s. Use a Kiln that reads a matching format, or change required_version if the recipe does not need it.", k.RequiredVersion, format))}, true
		}
	}
	return nil, false
}

// version is MAJOR.MINOR.PATCH; missing components are 0.
type version [3]int

func (v version) compare(w version) int {
	for i := range v {
		if v[i] != w[i] {
			if v[i] < w[i] {
				return -1
			}
			return 1
		}
	}
	return 0
}

// parseVersion parses "1", "1.2" or "1.2.3" and says how many components it had.
func parseVersion(s string) (version, int) {
	var v version
	parts := strings.Split(s, ".")
	if len(parts) > 3 {
		return v, 0
	}
	for i, p := range parts {
		if p == "" || len(p) > 9 || strings.Trim(p, "0123456789") != "" {
			return v, 0
		}
		v[i], _ = strconv.Atoi(p)
	}
	return v, len(parts)
}

type constraint struct {
	op string
	v  version
	n  int // components written
}

var constraintOps = []string{">=", "<=", "!=", "~>", ">", "<", "="} // longest first

func parseConstraints(s string) ([]constraint, error) {
	var out []constraint
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		c := constraint{op: "="}
		for _, op := range constraintOps {
			if strings.HasPrefix(part, op) {
				c.op, part = op, strings.TrimSpace(part[len(op):])
				break
			}
		}
		if c.v, c.n = parseVersion(part); c.n == 0 {
			return nil, fmt.Errorf("%q is not a version such as %q", part, FormatVersion)
		}
		out = append(out, c)
	}
	return out, nil
}

func (c constraint) allows(v version) bool {
	cmp := v.compare(c.v)
	switch c.op {
	case ">=":
		return cmp >= 0
	case "<=":
		return cmp <= 0
	case ">":
		return cmp > 0
	case "<":
		return cmp < 0
	case "!=":
		return cmp != 0
	case "~>":
		// Pessimistic: ~> 0.1 allows 0.1 up to (not including) 1.0;
		// ~> 0.1.2 allows 0.1.2 up to 0.2.0.
		if cmp < 0 {
			return false
		}
		upper := c.v
		i := c.n - 2
		if i < 0 {
			i = 0
		}
		upper[i]++
		for j := i + 1; j < len(upper); j++ {
			upper[j] = 0
		}
		return v.compare(upper) < 0
	}
	return cmp == 0
}
