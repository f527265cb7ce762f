image "sb-ec-key" {
  version = "1.0.0"
  base "debian" { suite = "bookworm" }
  boot {
    firmware                = "uefi"
    secure_boot             = "custom"
    secure_boot_key         = "../keys/ec.key" # ERROR: Not an RSA key
    secure_boot_certificate = "../keys/db.pem"
    secure_boot_vars        = "../keys/vars.fd"
  }
}
