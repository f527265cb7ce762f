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
	"ssh-keygen":         "openssh-client", // kiln run --ssh: the throwaway key
	"ssh":                "openssh-client", // kiln ssh
	"swtpm":              "swtpm",          // tpm = true, --tpm
	"swtpm_setup":        "swtpm-tools",    // tpm = true, --tpm
}

// JudgeTools maps the programs only the tests run (the independent judges:
// sgdisk, fsck.vfat, xmllint, ...) to their Debian packages. install-deps.sh
// installs these too, and a test checks that every tool a test asks for
// through testutil.Require or testutil.Have is in one of the two tables.
var JudgeTools = map[string]string{
	"bash":            "bash",
	"blkid":           "util-linux",
	"docker-registry": "docker-registry",
	"fish":            "fish",
	"fsck.vfat":       "dosfstools",
	"gpg":             "gpg",
	"gpgv":            "gpgv",
	"groff":           "groff-base",
	"isoinfo":         "genisoimage",
	"man":             "man-db",
	"mcopy":           "mtools",
	"mdir":            "mtools",
	"minfo":           "mtools",
	"mtype":           "mtools",
	"openssl":         "openssl",
	"osslsigncode":    "osslsigncode",
	"patch":           "patch",
	"qemu-io":         "qemu-utils",
	"sbsign":          "sbsigntool",
	"sbverify":        "sbsigntool",
	"setcap":          "libcap2-bin",
	"skopeo":          "skopeo",
	"sfdisk":          "fdisk",
	"sgdisk":          "gdisk",
	"systemd-analyze": "systemd",
	"tar":             "tar",
	"xmllint":         "libxml2-utils",
	"zsh":             "zsh",
}

// GoJudgeTools maps the judges that no Debian package provides to the Go
// command that builds them, at a pinned version. testutil.Require and Have
// build a missing one with go install into a cache that later runs reuse.
var GoJudgeTools = map[string]string{
	"oras": "oras.land/oras/cmd/oras@v1.3.6",
}

// PackageFor returns the Debian package that provides tool, from Tools or
// JudgeTools, or "".
func PackageFor(tool string) string {
	if p, ok := Tools[tool]; ok {
		return p
	}
	return JudgeTools[tool]
}

// BuildTools are the programs every kiln build runs.
var BuildTools = []string{"mmdebstrap", "unshare", "mke2fs", "debugfs", "e2fsck", "qemu-system-x86_64", "cp"}

// Require reports every missing tool at once, with the packages that
// provide them, or returns nil. A tool not in Tools is named without a
// package (and the hint names no package when none is known).
func Require(tools ...string) error {
	var missing, pkgs []string
	seen := map[string]bool{}
	for _, t := range tools {
		if _, err := exec.LookPath(t); err == nil {
			continue
		}
		missing = append(missing, t)
		if p := PackageFor(t); p != "" && !seen[p] {
			seen[p] = true
			pkgs = append(pkgs, p)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	sort.Strings(pkgs)
	hint := "run scripts/install-deps.sh"
	if len(pkgs) > 0 {
		hint = "apt-get install " + strings.Join(pkgs, " ") + " (or run scripts/install-deps.sh)"
	}
	return fmt.Errorf("missing host tools: %s\n  install them with: %s", strings.Join(missing, ", "), hint)
}
