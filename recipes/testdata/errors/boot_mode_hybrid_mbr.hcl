image "hybrid-mbr" {
  version = "1.0.0"
  base "debian" { suite = "bookworm" }
  boot {
    firmware = "hybrid" # ERROR: Boot mode not supported yet
  }
  disk {
    size  = "2GiB"
    table = "mbr" # ERROR: Boot mode not supported yet
  }
}
