image "size-units" {
  version = "1.0.0"
  base "debian" {
    suite = "trixie"
  }
  boot {
    firmware = "bios"
  }
  disk {
    table    = "mbr"
    size     = "2G"      # ERROR: Invalid size
    esp_size = "128mb"   # ERROR: Invalid size
    partition "root" {
      size = "1.5 GiB"   # ERROR: Invalid size
      type = "root"
    }
    partition "data" {
      size = "10GB"      # ERROR: Invalid size
      type = "linux"
    }
  }
}
