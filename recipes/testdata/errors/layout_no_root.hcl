image "x" {
  version = "1.0.0"
  base "debian" { suite = "bookworm" }
  boot { firmware = "bios" }
  disk { # ERROR: No root partition
    size  = "2GiB"
    table = "mbr"
    partition "data" {
      size = "rest"
      type = "linux"
    }
  }
}
