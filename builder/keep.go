package builder

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/kiln-build/kiln/internal/fsroot"
	"github.com/kiln-build/kiln/internal/sandbox"
)

// keepForDebugging moves what a person needs to look into a failure out of
// staging into dir (under <images>/.failed/, never the catalog): the tree
// when the build failed before the disk was written, else the raw disk
// image the tests booted (without the test harness, which only ever went
// into a throwaway copy). It returns how to get in, or "".
func keepForDebugging(dir, tree, raw string) string {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return ""
	}
	if _, err := os.Lstat(tree); err == nil {
		dst := filepath.Join(dir, "tree")
		if err := os.Rename(tree, dst); err != nil {
			return fmt.Sprintf("could not keep the tree: %v", err)
		}
		return fmt.Sprintf("kept the tree: %s\n  look inside with: chroot %s /bin/bash", dst, dst)
	}
	if _, err := os.Stat(raw); err == nil {
		dst := filepath.Join(dir, "disk.raw")
		if err := os.Rename(raw, dst); err != nil {
			return fmt.Sprintf("could not keep the disk: %v", err)
		}
		return fmt.Sprintf("kept the disk: %s\n  boot it with: kiln run %s", dst, dst)
	}
	return ""
}

// Shell runs an interactive shell in a failed build's tree (Paused.Tree),
// the way build steps run there: chrooted in private mount and PID
// namespaces, with the host's DNS and no services starting. What the
// person changes stays in the tree, for a retried stage or a kept tree.
func Shell(ctx context.Context, tree string, stdin, stdout, stderr *os.File) error {
	undo, err := prepareForSteps(tree)
	if err != nil {
		return err
	}
	defer func() { _ = undo() }()
	sh := "/bin/sh"
	if _, err := fsroot.Resolve(tree, "/bin/bash"); err == nil {
		sh = "/bin/bash"
	}
	// Debian's bashrc sets PS1 itself, with $debian_chroot in front.
	env := append(sandbox.DefaultEnv(), "PS1=(kiln: failed build) \\w# ", "debian_chroot=kiln: failed build")
	if t := os.Getenv("TERM"); t != "" {
		env = append(env, "TERM="+t) // the last value wins over DefaultEnv's dumb
	}
	return sandbox.Interactive(ctx, sandbox.Spec{Root: tree, Args: []string{sh, "-i"}, Env: env}, stdin, stdout, stderr)
}
