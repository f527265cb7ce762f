package run

import (
	"fmt"
	"os/exec"
	"sort"
	"strings"
)

// Tools maps every host program Kiln runs to the Debian package that
// provides it. scripts/install-deps.sh installs each of these packages (a
// test checks it). Commands check their tools up front with Require.
var Tools = map[string]string{
	"mmdebstrap":         "mmdebstrap",
	"unshare":            "util-linux",
	"mke2fs":             "e2fsprogs",
	"debugfs":            "e2fsprogs",
	"e2fsck":             "e2fsprogs",
	"qemu-system-x86_64": "qemu-system-x86",
	"qemu-img":           "qemu-utils",
	"zstd":               "zstd",
	"xz":                 "xz-utils",
	"cp":                 "coreutils",
}

// BuildTools are the programs every kiln build runs.
var BuildTools = []string{"mmdebstrap", "unshare", "mke2fs", "debugfs", "e2fsck", "qemu-system-x86_64", "cp"}

// Require reports every missing tool at once, with the packages that
// provide them, or returns nil. A tool not in Tools is named without a
// package.
func Require(tools ...string) error {
	var missing, pkgs []string
	seen := map[string]bool{}
	for _, t := range tools {
		if _, err := exec.LookPath(t); err == nil {
			continue
		}
		missing = append(missing, t)
		if p, ok := Tools[t]; ok && !seen[p] {
			seen[p] = true
			pkgs = append(pkgs, p)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	sort.Strings(pkgs)
	return fmt.Errorf("missing host tools: %s\n  install them with: apt-get install %s (or run scripts/install-deps.sh)",
		strings.Join(missing, ", "), strings.Join(pkgs, " "))
}
