image "sb-bios" {
  version = "1.0.0"
  base "debian" { suite = "bookworm" }
  boot {
    firmware    = "bios"
    secure_boot = "distro" # ERROR: Secure Boot needs UEFI
  }
}
