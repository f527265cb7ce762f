# One recipe for every boot mode: build it with
#   kiln build -var firmware=bios -var table=mbr examples/boot-matrix.hcl
# CI builds and boots all five supported combinations. The tests check, inside
# the booted guest, that the firmware and the partition table are what the
# recipe asked for.
kiln { required_version = ">= 0.1" }

variable "firmware" {
  default     = "hybrid"
  description = "uefi, bios or hybrid"
}

variable "table" {
  default     = "gpt"
  description = "gpt or mbr"
}

image "boot-matrix" {
  version = "1.0.0"

  base "debian" { suite = "trixie" }
  boot { firmware = var.firmware }
  disk {
    size  = "2GiB"
    table = var.table
  }

  test "shell" "booted-firmware" {
    inline = [
      # KILN_FIRMWARE is the firmware this boot runs under (hybrid images boot twice).
      "if [ -d /sys/firmware/efi ]; then booted=uefi; else booted=bios; fi",
      "echo \"booted under $booted, expected $KILN_FIRMWARE\"",
      "test \"$booted\" = \"$KILN_FIRMWARE\"",
    ]
  }

  test "shell" "partition-table" {
    environment = { TABLE = var.table }
    inline = [
      "disk=/dev/$(lsblk -no PKNAME \"$(findmnt -n -o SOURCE /)\")",
      "pttype=$(blkid -p -o value -s PTTYPE \"$disk\")",
      "echo \"$disk has a $pttype partition table\"",
      "case \"$TABLE\" in gpt) test \"$pttype\" = gpt ;; mbr) test \"$pttype\" = dos ;; esac",
    ]
  }

  test "shell" "fstab-mounts" {
    inline = [
      "findmnt -n -o FSTYPE / | grep -qx ext4",
      "if [ \"$KILN_FIRMWARE\" = uefi ] || grep -q /boot/efi /etc/fstab; then test -d /boot/efi/EFI && findmnt -n -o FSTYPE /boot/efi | grep -qx vfat; fi",
    ]
  }

  # Uncompressed, so the tests can check the disk directly.
  output {
    formats  = ["raw"]
    compress = "none"
  }
}
