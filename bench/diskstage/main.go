// Command diskstage runs Kiln's disk stage alone on a tree, for bench/disk-stage.sh.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/kiln-build/kiln/disk"
	"github.com/kiln-build/kiln/platform"
)

func main() {
	tree := flag.String("tree", "", "root tree")
	out := flag.String("o", "", "output raw image (must not exist)")
	efi := flag.String("efi", "", "file to place at EFI/BOOT/BOOTX64.EFI")
	size := flag.Uint64("size-mib", 2048, "disk size in MiB")
	flag.Parse()
	l, err := disk.Plan(disk.Spec{Size: *size * disk.MiB, Table: platform.GPT, ESPSize: 256 * disk.MiB, IDs: disk.IDs{Name: "bench", Version: "1.0.0"}})
	if err == nil {
		err = disk.Write(context.Background(), *out, l, disk.Content{Tree: *tree, Log: io.Discard, SourceDate: 1700000000,
			ESP: []disk.File{{Path: "EFI/BOOT/BOOTX64.EFI", HostPath: *efi}}})
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "diskstage:", err)
		os.Exit(1)
	}
}
