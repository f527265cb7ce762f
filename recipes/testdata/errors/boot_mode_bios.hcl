image "bios" {
  version = "1.0.0"
  base "debian" { suite = "bookworm" }
  boot {
    firmware = "bios" # ERROR: Boot mode not supported yet
  }
}
