image "bad-size" {
  version = "1.0.0"
  base "debian" { suite = "bookworm" }
  disk {
    size     = "2 gigs" # ERROR: Invalid size
    esp_size = -5       # ERROR: Invalid size
  }
}
