image "mbr" {
  version = "1.0.0"
  base "debian" { suite = "bookworm" }
  disk {
    size  = "2GiB"
    table = "mbr" # ERROR: Boot mode not supported yet
  }
}
