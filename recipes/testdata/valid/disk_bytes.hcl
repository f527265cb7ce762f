# A disk size may be a number of bytes, and a fraction of a binary unit.
image "disk-bytes" {
  version = "10.0.0"
  base "debian" { suite = "stable" }
  disk {
    size     = 1073741824
    esp_size = "100.5MiB"
    esp_automount = false
  }
  test "shell" "t" { inline = ["true"] }
}
