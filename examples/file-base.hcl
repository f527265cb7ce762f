# Import a disk image that another tool made (raw, qcow2, VMDK, VHD or VHDX,
# or a .raw.zst/.raw.xz), customise it and ship it as a tested Kiln image:
#   kiln build -var disk=legacy.vmdk -var sha256=$(sha256sum legacy.vmdk | cut -d' ' -f1) examples/file-base.hcl
# Kiln checks the sha256 before it reads anything, finds the root filesystem
# from the partition table, and extracts it (and the partitions its
# /etc/fstab mounts, such as /boot) without mounting anything.
kiln { required_version = ">= 0.1" }

variable "disk" {
  description = "the disk image file, relative to this recipe's directory or absolute"
}

variable "sha256" {
  description = "the disk image file's sha256, as sha256sum prints it"
}

image "imported" {
  version = "1.0.0"

  base "file" {
    path   = var.disk
    sha256 = var.sha256
  }

  # The imported image is re-laid out from this recipe: a new partition
  # table, fstab and GRUB, whatever the original disk had.
  boot { firmware = "bios" }
  disk {
    size = "auto"
    grow = false
  }

  build "shell" "mark" {
    inline = ["echo 'imported by kiln' > /etc/kiln-imported"]
  }

  test "shell" "customised" {
    inline = ["grep -q 'imported by kiln' /etc/kiln-imported"]
  }

  test "shell" "booted-under-bios" {
    inline = ["test ! -d /sys/firmware/efi"]
  }

  output {
    formats  = ["raw"]
    compress = "none"
  }
}
