# A declared partition layout: separate /boot and /var, swap, and a root that
# takes the rest, booting under both BIOS and UEFI from one GPT disk. The
# tests check inside the guest that everything is mounted where fstab says.
kiln { required_version = ">= 0.1" }

image "custom-layout" {
  version = "1.0.0"

  base "debian" { suite = "trixie" }
  boot { firmware = "hybrid" }

  disk {
    size  = "auto" # the content plus headroom, rounded up to 1MiB
    table = "gpt"

    partition "BIOS" {
      size = "1MiB"
      type = "bios"
    }
    partition "ESP" {
      size = "128MiB"
      type = "esp"
    }
    partition "boot" {
      size  = "256MiB"
      type  = "linux"
      mount = "/boot"
    }
    partition "swap" {
      size = "128MiB"
      type = "swap"
    }
    partition "var" {
      size    = "512MiB"
      type    = "var"
      options = "nodev,nosuid"
    }
    partition "root" {
      size = "rest"
      type = "root"
    }
  }

  test "shell" "mounts" {
    inline = [
      "findmnt -n -o FSTYPE /         | grep -qx ext4",
      "findmnt -n -o FSTYPE /boot     | grep -qx ext4",
      "findmnt -n -o FSTYPE /boot/efi | grep -qx vfat",
      "findmnt -n -o FSTYPE /var      | grep -qx ext4",
      "findmnt -n -o OPTIONS /var | grep -q nodev",
      "findmnt -n -o OPTIONS /var | grep -q nosuid",
      "test \"$(findmnt -n -o SOURCE /boot)\" != \"$(findmnt -n -o SOURCE /)\"",
    ]
  }

  test "shell" "swap-active" {
    inline = ["swapon --show=TYPE --noheadings | grep -qx partition"]
  }

  test "shell" "kernel-on-boot-partition" {
    inline = [
      # Debian keeps /boot/vmlinuz pointing at the newest kernel (link_in_boot)
      "test -L /boot/vmlinuz && test -e /boot/vmlinuz",
      "test -L /boot/initrd.img && test -e /boot/initrd.img",
      "grep -q link_in_boot /etc/kernel-img.conf",
    ]
  }

  output {
    formats  = ["raw"]
    compress = "none"
  }
}
