image "sb-custom-missing" {
  version = "1.0.0"
  base "debian" { suite = "bookworm" }
  boot {
    firmware                = "uefi"
    secure_boot             = "custom" # ERROR: Missing Secure Boot keys
    secure_boot_key         = "../keys/db.key"
    secure_boot_certificate = "../keys/nope.pem" # ERROR: File not found
  }
}
