image "x" {
  version = "1.0.0"
  base "debian" { suite = "bookworm" }
  boot { firmware = "uefi" }
  disk {
    size = "1GiB" # ERROR: Partitions do not fit
    partition "ESP" {
      size = "512MiB"
      type = "esp"
    }
    partition "var" {
      size = "512MiB"
      type = "var"
    }
    partition "root" {
      size = "rest"
      type = "root"
    }
  }
}
