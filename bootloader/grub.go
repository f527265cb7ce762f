// Package bootloader installs GRUB into images without grub-install, loop
// devices or mounts.
//
// GRUB's images are made by the target's own grub-mkimage, run inside the
// tree, so the bootloader always matches the packages the image ships. One
// grub.cfg on the root filesystem serves every firmware; it boots /vmlinuz and
// /initrd.img, the symlinks Debian keeps pointing at the newest kernel, so
// kernel upgrades inside the guest keep booting.
//
// UEFI boots through the removable-media path EFI/BOOT/BOOTX64.EFI on the ESP,
// so no NVRAM entry is needed.
//
// It does not write partition tables or filesystems (see disk).
package bootloader

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/kiln-build/kiln/internal/sandbox"
)

// Config is what the bootloader needs to know about the image.
type Config struct {
	RootUUID    string   // filesystem UUID of the root filesystem (for root=)
	BootUUID    string   // filesystem UUID of the filesystem holding /boot; empty = RootUUID
	BootPrefix  string   // path of /boot inside the filesystem holding it: "/boot", or "" when /boot is its own partition
	KernelArgs  []string // extra kernel command-line arguments
	Title       string
	SerialSpeed int // default 115200
	// MenuTimeout is how long GRUB shows its menu before it boots the
	// default entry, in whole seconds; 0 (the default) boots at once
	// without drawing the menu.
	MenuTimeout int
}

func (c Config) bootUUID() string {
	if c.BootUUID != "" {
		return c.BootUUID
	}
	return c.RootUUID
}

func (c Config) speed() int {
	if c.SerialSpeed == 0 {
		return 115200
	}
	return c.SerialSpeed
}

// GrubCfg renders /boot/grub/grub.cfg.
func GrubCfg(c Config) string {
	args := append([]string{"root=UUID=" + c.RootUUID, "ro", "console=tty0", fmt.Sprintf("console=ttyS0,%d", c.speed())}, c.KernelArgs...)
	// With /boot on the root filesystem, Debian's symlinks are /vmlinuz and
	// /initrd.img; with a separate /boot, Kiln turns on link_in_boot and
	// they are /vmlinuz and /initrd.img of the boot filesystem. Either way
	// the paths below are relative to the filesystem GRUB searched for.
	var b strings.Builder
	fmt.Fprintf(&b, `# Written by kiln. Boots the newest kernel through Debian's /vmlinuz and /initrd.img symlinks.
set timeout=%d
set default=0
serial --unit=0 --speed=%d
terminal_input serial console
terminal_output serial console
search --no-floppy --fs-uuid --set=root %s
menuentry '%s' {
	echo 'Loading Linux ...'
	linux /vmlinuz %s
	initrd /initrd.img
}
`, c.MenuTimeout, c.speed(), c.bootUUID(), strings.ReplaceAll(c.Title, "'", ""), strings.Join(args, " "))
	return b.String()
}

// UnusedUnits are units of the GRUB packages that Kiln's grub.cfg makes
// useless, disabled in every image: grub-common.service records each
// successful boot in /boot/grub/grubenv for the recordfail logic of the
// configurations grub-mkconfig writes, which Kiln's does not have (it costs
// three processes before multi-user.target at every boot).
var UnusedUnits = []string{"grub-common.service"}

// earlyConfig is embedded into GRUB's core image: it finds the filesystem
// holding /boot/grub by UUID.
func earlyConfig(c Config) string {
	return fmt.Sprintf("search --no-floppy --fs-uuid --set=root %s\nset prefix=($root)%s/grub\n", c.bootUUID(), c.BootPrefix)
}

// EFIModules are built into BOOTX64.EFI, so GRUB needs no module files to
// reach grub.cfg.
var EFIModules = []string{
	"part_gpt", "part_msdos", "ext2", "fat", "search", "search_fs_uuid", "normal", "linux",
	"configfile", "echo", "test", "serial", "terminal", "efi_gop", "all_video", "gzio", "boot", "reboot", "halt",
}

// MkimageArgs is the grub-mkimage command line for a format (pure; tested).
func MkimageArgs(format string, modules []string, earlyCfgPath, prefix string) []string {
	args := []string{"grub-mkimage", "-O", format, "-o", "/tmp/grub.img", "-c", earlyCfgPath, "-p", prefix}
	return append(args, modules...)
}

// EFIImage runs the tree's grub-mkimage and returns BOOTX64.EFI.
func EFIImage(ctx context.Context, tree string, c Config, log io.Writer) ([]byte, error) {
	return mkimage(ctx, tree, mkimageJob{format: "x86_64-efi", modules: EFIModules, early: earlyConfig(c), prefix: c.BootPrefix + "/grub"}, log)
}

// mkimageJob is one run of the tree's grub-mkimage.
type mkimageJob struct {
	format  string
	modules []string
	early   string // the config embedded into the image
	prefix  string
	// files are written to /tmp/NAME in the sandbox before grub-mkimage
	// runs, for options that name them (--pubkey /tmp/NAME).
	files   map[string][]byte
	options []string // more grub-mkimage options
}

func mkimage(ctx context.Context, tree string, j mkimageJob, log io.Writer) ([]byte, error) {
	// /tmp is a private tmpfs inside the sandbox, so nothing is left in the
	// tree. grub-mkimage fsyncs its output, which a pipe refuses, so the
	// image goes through a file there and then to stdout.
	var script strings.Builder
	fmt.Fprintf(&script, "set -e\ncat > /tmp/early.cfg <<'KILN_EOF'\n%sKILN_EOF\n", j.early)
	names := make([]string, 0, len(j.files))
	for name := range j.files {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		fmt.Fprintf(&script, "base64 -d > /tmp/%s <<'KILN_EOF'\n%s\nKILN_EOF\n", name, base64.StdEncoding.EncodeToString(j.files[name]))
	}
	args := MkimageArgs(j.format, nil, "/tmp/early.cfg", j.prefix)
	args = append(append(args, j.options...), j.modules...)
	fmt.Fprintf(&script, "%s\ncat /tmp/grub.img", shellJoin(args))
	var out, errs bytes.Buffer
	err := sandbox.RunSplit(ctx, sandbox.Spec{Root: tree, Args: []string{"/bin/sh", "-c", script.String()}, Env: sandbox.DefaultEnv()}, nil, &out, io.MultiWriter(&errs, log))
	if err != nil {
		return nil, fmt.Errorf("making GRUB's %s image with the target's grub-mkimage (is the package for %s installed in the base?): %w", j.format, j.format, err)
	}
	if out.Len() < 4096 {
		return nil, fmt.Errorf("grub-mkimage produced only %d bytes for %s: %s", out.Len(), j.format, errs.String())
	}
	return out.Bytes(), nil
}

func shellJoin(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		q[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	return strings.Join(q, " ")
}
