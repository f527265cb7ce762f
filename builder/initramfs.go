package builder

import (
	"strings"

	"github.com/kiln-build/kiln/base"
	"github.com/kiln-build/kiln/recipes"
)

// vmDrivers are the modules a "vm" initramfs carries (see docs/boot-modes.md):
// what reaches an ext4 root on the disks of QEMU/KVM (virtio-blk,
// virtio-scsi, AHCI, IDE, NVMe), Hyper-V and Azure (storvsc), VMware
// (PVSCSI, AHCI, NVMe) and Xen (blkfront), plus the root filesystem and its
// checksum driver for kernels that build them as modules. Names a kernel
// does not have are skipped; dependencies come along.
var vmDrivers = []string{
	"virtio_pci", "virtio_blk", "virtio_scsi", "sd_mod",
	"ahci", "ata_piix", "ata_generic",
	"nvme",
	"hv_vmbus", "hv_storvsc",
	"vmw_pvscsi",
	"xen-blkfront",
	"ext4", "crc32c",
}

// initramfsHook is an initramfs-tools hook (/etc/initramfs-tools/hooks, the
// administrator's): it adds the modules without loading them; udev loads
// what the machine has, as it does with MODULES=most.
var initramfsHook = `#!/bin/sh
# Written by kiln (initramfs_modules = "vm"): the disk drivers of virtual
# machines. Set initramfs_modules = "most" in the recipe's base block for
# Debian's default, every storage and filesystem driver.
PREREQ=""
prereqs() { echo "$PREREQ"; }
case "$1" in prereqs) prereqs; exit 0 ;; esac
. /usr/share/initramfs-tools/hook-functions
manual_add_modules ` + strings.Join(vmDrivers, " ") + `
`

// initramfsSetup is the initramfs-tools configuration a Debian base is
// bootstrapped with, so the kernel's package builds the initramfs that way
// the first time.
func initramfsSetup(modules string) []base.SetupFile {
	if modules != recipes.InitramfsVM {
		return nil
	}
	return []base.SetupFile{
		{Path: "/etc/initramfs-tools/conf.d/kiln.conf", Data: "# Written by kiln: only the modules the hooks add; see hooks/kiln.\nMODULES=list\n"},
		{Path: "/etc/initramfs-tools/hooks/kiln", Data: initramfsHook, Mode: 0o755},
	}
}
