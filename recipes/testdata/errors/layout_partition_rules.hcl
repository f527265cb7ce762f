image "x" {
  version = "1.0.0"
  base "debian" { suite = "bookworm" }
  boot { firmware = "bios" }
  disk {
    size      = "16GiB"
    table     = "mbr"
    signature = "0xzz" # ERROR: Invalid disk signature
    headroom  = 10 # ERROR: headroom without size = "auto"
    partition "BIOS" {
      size = "1MiB"
      type = "bios" # ERROR: BIOS boot partition on MBR
    }
    partition "data" {
      size       = "rest"
      type       = "linux"
      filesystem = "btrfs" # ERROR: Invalid filesystem
    }
    partition "root" {
      size = "rest" # ERROR: Two partitions take the rest
      type = "root"
    }
    partition "DATA" { # ERROR: Duplicate partition label
      size  = "1GiB"
      type  = "0x83"
      mount = "/" # ERROR: Duplicate mount point
    }
  }
}
