package recipes

import (
	"fmt"
	"path"
	"strings"

	"github.com/hashicorp/hcl/v2"
)

// lintBlockSchema is the lint block: what the secret lint, which fails a
// build whose tree holds a private key, credentials or a sensitive
// variable's value, accepts.
var lintBlockSchema = &hcl.BodySchema{Attributes: []hcl.AttributeSchema{{Name: "allow"}}}

var allowArg = arg{"allow", `["/etc/ssl/private/web.key"]`, false}

// Lint is the image's lint block.
type Lint struct {
	// Allow are absolute paths inside the image, or path.Match patterns
	// ("/etc/ssl/private/*.key"), whose secret lint findings the build
	// accepts; the manifest records what they accepted.
	Allow []string
	Range Range
}

type lintBlock struct {
	Lint
	src         *decoded
	allowRanges []hcl.Range
}

func (d *decoder) decodeLintBlock(block *hcl.Block) (*lintBlock, hcl.Diagnostics) {
	content, diags := block.Body.Content(lintBlockSchema)
	b := &lintBlock{src: newDecoded("lint", block.DefRange, content.Attributes)}
	b.Range = toRange(block.DefRange)
	d.getStrList(b.src, allowArg, &b.Allow, &b.allowRanges, &diags)
	return b, diags
}

// validate checks each allowed path, pointing at the list element.
func (b *lintBlock) validate() hcl.Diagnostics {
	var diags hcl.Diagnostics
	if _, ok := b.src.valid("allow"); !ok {
		return nil
	}
	seen := map[string]hcl.Range{}
	for i, p := range b.Allow {
		rng := b.allowRanges[i]
		if first, dup := seen[p]; dup {
			diags = append(diags, errorDiag(rng, "Duplicate allowed path", fmt.Sprintf("%q is already allowed at %s. List each path once.", p, at(first))))
			continue
		}
		seen[p] = rng
		if !strings.HasPrefix(p, "/") {
			diags = append(diags, errorDiag(rng, "Invalid allowed path",
				fmt.Sprintf("%q is not an absolute path inside the image. Write the path the secret lint names, such as %q.", p, "/"+strings.TrimPrefix(p, "./"))))
		} else if _, err := path.Match(p, "/"); err != nil {
			diags = append(diags, errorDiag(rng, "Invalid allowed path",
				fmt.Sprintf("%q is not a valid pattern: use a path, or * ? and [...] as in /etc/ssl/private/*.key.", p)))
		}
	}
	return diags
}
