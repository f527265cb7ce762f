image "x" {
  version = "1.0.0"
  base "debian" { suite = "bookworm" }
  boot {
    firmware = "bios" # ERROR: Missing BIOS boot partition
  }
  disk {
    size  = "2GiB"
    table = "gpt"
    partition "root" {
      size = "rest"
      type = "root"
    }
  }
}
