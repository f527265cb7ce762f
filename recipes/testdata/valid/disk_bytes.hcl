# A disk size may be a number of bytes, and decimal units are powers of 1000.
image "disk-bytes" {
  version = "10.0.0"
  base "debian" { suite = "stable" }
  disk {
    size     = 1073741824
    esp_size = "100MB"
  }
  test "shell" "t" { inline = ["true"] }
}
