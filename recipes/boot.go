package recipes

import (
	"fmt"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"

	"github.com/kiln-build/kiln/platform"
)

// bootBlockSchema is the boot block: how the image boots.
var bootBlockSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{{Name: "firmware"}, {Name: "kernel_cmdline"}, {Name: "menu_timeout"}, {Name: "update_at_first_boot"}},
}

var (
	firmwareArg      = arg{"firmware", `"uefi"`, false}
	kernelCmdlineArg = arg{"kernel_cmdline", `["console=ttyS0", "quiet"]`, false}
	menuTimeoutArg   = arg{"menu_timeout", `"5s"`, false}
	firstBootArg     = arg{"update_at_first_boot", `true`, false}
)

// maxMenuTimeout bounds boot.menu_timeout: GRUB waits that long at every
// boot.
const maxMenuTimeout = time.Hour

// bootBlock is a decoded boot block.
type bootBlock struct {
	Boot
	src           *decoded
	cmdlineRanges []hcl.Range
}

func defaultBoot() Boot { return Boot{Firmware: DefaultFirmware, KernelCmdline: []string{}} }

// decodeBootBlock decodes a boot block.
func (d *decoder) decodeBootBlock(block *hcl.Block) (*bootBlock, hcl.Diagnostics) {
	content, diags := block.Body.Content(bootBlockSchema)
	b := &bootBlock{Boot: defaultBoot(), src: newDecoded("boot", block.DefRange, content.Attributes)}
	b.Range = toRange(block.DefRange)
	getName(d, b.src, firmwareArg, &b.Firmware, &diags)
	d.getStrList(b.src, kernelCmdlineArg, &b.KernelCmdline, &b.cmdlineRanges, &diags)
	d.getDuration(b.src, menuTimeoutArg, &b.MenuTimeout, &diags)
	d.getBool(b.src, firstBootArg, &b.UpdateAtFirstBoot, &diags)
	return b, diags
}

// validate checks the decoded values. Whether the firmware can be built
// with the disk's partition table is checkBootMode's business.
func (b *bootBlock) validate() hcl.Diagnostics {
	var diags hcl.Diagnostics
	if a, ok := b.src.valid("firmware"); ok && !b.Firmware.Valid() {
		diags = append(diags, errorDiag(a.Expr.Range(), "Invalid firmware",
			fmt.Sprintf("%q is not a firmware. Use %s; the default is %q.", b.Firmware, quoteList(platform.Firmwares), DefaultFirmware)))
	}
	if a, ok := b.src.valid("menu_timeout"); ok && (b.MenuTimeout < 0 || b.MenuTimeout > maxMenuTimeout || b.MenuTimeout%time.Second != 0) {
		diags = append(diags, errorDiag(a.Expr.Range(), "Invalid menu timeout",
			fmt.Sprintf("GRUB waits whole seconds, from 0 (boot at once, the default) to 1h; %s is not one. Use, for example, menu_timeout = %s.", b.MenuTimeout, menuTimeoutArg.example)))
	}
	for i, arg := range b.KernelCmdline {
		if strings.TrimSpace(arg) == "" || strings.ContainsAny(arg, "\r\n") {
			diags = append(diags, errorDiag(b.cmdlineRanges[i], "Invalid kernel argument",
				fmt.Sprintf("%q cannot go on the kernel command line. Give one argument per list element, such as %s.", arg, kernelCmdlineArg.example)))
		}
	}
	return diags
}
