# The smallest useful Kiln recipe: Debian, booted under UEFI, with one build
# step and one test that runs inside the booted image.
kiln { required_version = ">= 0.1" }

variable "suite" {
  default     = "trixie"
  description = "Debian suite to bootstrap"
}

image "debian-minimal" {
  version = "1.0.0"

  # The mirror comes from the host's apt sources unless `mirror` is set here.
  base "debian" { suite = var.suite }

  boot { firmware = "uefi" }
  disk { size = "2GiB" }

  build "shell" "motd" {
    inline = ["echo 'built by kiln' > /etc/motd"]
  }

  test "shell" "motd" {
    inline = ["grep -q 'built by kiln' /etc/motd"]
  }

  test "shell" "identity-is-generalised" {
    inline = [
      # systemd replaced "uninitialized" with a fresh ID at first boot
      "test \"$(cat /etc/machine-id)\" != uninitialized",
      "test -s /etc/machine-id",
      "findmnt -n -o FSTYPE / | grep -qx ext4",
      # the ESP is mounted on first use (disk.esp_automount): autofs, then vfat once read
      "findmnt -n -o FSTYPE /boot/efi | head -n 1 | grep -qx autofs",
      "test -e /boot/efi/EFI/BOOT/BOOTX64.EFI",
      "findmnt -n -o FSTYPE /boot/efi | grep -qx vfat",
    ]
  }

  # The raw image is published zstd-compressed (the default); qcow2 is
  # checked and read back like every output.
  output { formats = ["raw", "qcow2"] }
}
