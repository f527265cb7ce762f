image "x" {
  version = "1.0.0"
  base "debian" { suite = "bookworm" }
  boot { firmware = "uefi" }
  disk {
    size     = "16GiB"
    esp_size = "300MiB" # ERROR: esp_size with partition blocks
    guid     = "not-a-guid" # ERROR: Invalid GUID
    esp_automount = false # ERROR: esp_automount with partition blocks
    partition "ESP" {
      size       = "32MiB" # ERROR: EFI system partition too small
      type       = "esp"
      filesystem = "ext4" # ERROR: EFI system partition must be vfat
    }
    partition "swap" {
      size  = "1GiB"
      type  = "swap"
      mount = "/swap" # ERROR: Mount point without a filesystem
    }
    partition "scratch" {
      size       = "1GiB"
      type       = "linux" # ERROR: Swap needs the swap type
      filesystem = "swap"
    }
    partition "tiny" {
      size = "4KiB" # ERROR: Partition too small
      type = "nosuchtype" # ERROR: Invalid partition type
    }
    partition "opt" {
      size    = "1GiB"
      type    = "linux"
      mount   = "opt/" # ERROR: Invalid mount point
      uuid    = "1234" # ERROR: Invalid filesystem UUID
    }
    partition "bad label!" { # ERROR: Invalid partition label
      size    = "1GiB"
      type    = "linux"
      options = "noatime" # ERROR: Mount options without a mount point
      guid    = "xyz" # ERROR: Invalid GUID
    }
    partition "root" {
      size       = "rest"
      type       = "root"
      filesystem = "vfat" # ERROR: Root filesystem must be ext4
    }
    partition "raw" {
      size = "1GiB"
      type = "0x8e" # ERROR: Type has no GPT form
    }
  }
}
