package recipes

import (
	"fmt"

	"github.com/hashicorp/hcl/v2"
)

// HealthChecks are the names of the base health checks every test boot is
// held to, in the order they are reported. A recipe may opt out of some with
// skip_health = [...] in its image block.
var HealthChecks = []string{
	"multi-user",    // multi-user.target was reached
	"failed-units",  // systemctl --failed is empty
	"kernel-errors", // no kernel panic, oops, BUG: or call trace on the console
	"secure-boot",   // boots under Secure Boot firmware only: the guest's SecureBoot EFI variable is 1
}

var skipHealthArg = arg{"skip_health", `["failed-units"]`, false}

// decodeSkipHealth decodes and checks the image's skip_health argument.
func (d *decoder) decodeSkipHealth(img *imageBlock, diags *hcl.Diagnostics) {
	var ranges []hcl.Range
	d.getStrList(img.src, skipHealthArg, &img.SkipHealth, &ranges, diags)
	seen := map[string]bool{}
	var out []string
	for i, name := range img.SkipHealth {
		switch {
		case !contains(HealthChecks, name):
			*diags = append(*diags, errorDiag(ranges[i], "Unknown health check",
				fmt.Sprintf("%q is not a base health check. skip_health takes %s.", name, quoteList(HealthChecks))))
		case !seen[name]:
			seen[name] = true
			out = append(out, name)
		}
	}
	img.SkipHealth = out
}
