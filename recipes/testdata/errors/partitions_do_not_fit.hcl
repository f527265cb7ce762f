image "no-room" {
  version = "1.0.0"
  base "debian" { suite = "bookworm" }
  disk {
    size = "300MiB" # ERROR: Disk too small for its partitions
  }
}
