image "small" {
  version = "1.0.0"
  base "debian" { suite = "bookworm" }
  disk {
    size     = "100MiB" # ERROR: Disk too small
    esp_size = "32MiB"  # ERROR: EFI system partition too small
  }
}
