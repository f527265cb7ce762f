image "bad-firmware" {
  version = "1.0.0"
  base "debian" { suite = "bookworm" }
  boot {
    firmware = "efi" # ERROR: Invalid firmware
  }
  disk {
    size  = "2GiB"
    table = "dos" # ERROR: Invalid partition table
  }
}
