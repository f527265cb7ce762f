image "layout" {
  version = "2.1.0"
  base "debian" { suite = "bookworm" }
  boot { firmware = "hybrid" }
  disk {
    size      = "auto"
    headroom  = 30
    seed      = "fleet-a"
    guid      = "5b2a1c3d-0e4f-4a5b-8c6d-7e8f90a1b2c3"
    grow      = false
    partition "BIOS" {
      size = "1MiB"
      type = "bios"
    }
    partition "ESP" {
      size = "128MiB"
      type = "esp"
      uuid = "1A2B-3C4D"
    }
    partition "boot" {
      size  = "512MiB"
      type  = "linux"
      mount = "/boot"
    }
    partition "swap" {
      size = "256MiB"
      type = "swap"
    }
    partition "var" {
      size    = "1GiB"
      type    = "var"
      options = "nodev,nosuid"
    }
    partition "root" {
      size = "rest"
      type = "root"
      guid = "11111111-2222-4333-8444-555555555555"
    }
  }
}
