image "sb-custom-menu" {
  version = "1.0.0"
  base "debian" { suite = "bookworm" }
  boot {
    firmware                = "uefi"
    menu_timeout            = "5s" # ERROR: No boot menu with custom Secure Boot
    secure_boot             = "custom"
    secure_boot_key         = "../keys/db.key"
    secure_boot_certificate = "../keys/db.pem"
    secure_boot_vars        = "../keys/vars.fd"
  }
}
