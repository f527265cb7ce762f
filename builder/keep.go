package builder

import (
	"fmt"
	"os"
	"path/filepath"
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
