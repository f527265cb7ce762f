image "sb-key-mismatch" {
  version = "1.0.0"
  base "debian" { suite = "bookworm" }
  boot {
    firmware                = "uefi"
    secure_boot             = "custom"
    secure_boot_key         = "../keys/other.key" # ERROR: Key does not match certificate
    secure_boot_certificate = "../keys/db.pem"
    secure_boot_vars        = "../keys/vars.fd"
  }
}
