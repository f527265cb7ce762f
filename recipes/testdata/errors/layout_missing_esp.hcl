image "x" {
  version = "1.0.0"
  base "debian" { suite = "bookworm" }
  boot {
    firmware = "uefi" # ERROR: Missing EFI system partition
  }
  disk {
    size = "2GiB"
    partition "root" {
      size = "rest"
      type = "root"
    }
  }
}
