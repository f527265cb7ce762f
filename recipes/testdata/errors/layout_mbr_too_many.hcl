image "x" {
  version = "1.0.0"
  base "debian" { suite = "bookworm" }
  boot { firmware = "bios" }
  disk {
    size  = "8GiB"
    table = "mbr"
    partition "a" {
      size = "1GiB"
      type = "linux"
    }
    partition "b" {
      size = "1GiB"
      type = "linux"
    }
    partition "c" {
      size = "1GiB"
      type = "swap"
    }
    partition "root" {
      size = "rest"
      type = "root"
    }
    partition "e" { # ERROR: Too many partitions for MBR
      size = "1GiB"
      type = "linux"
    }
  }
}
