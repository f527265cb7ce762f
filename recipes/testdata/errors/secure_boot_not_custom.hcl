image "sb-not-custom" {
  version = "1.0.0"
  base "debian" { suite = "bookworm" }
  boot {
    secure_boot      = "distro"
    secure_boot_vars = "../keys/vars.fd" # ERROR: Argument needs secure_boot = "custom"
  }
}
