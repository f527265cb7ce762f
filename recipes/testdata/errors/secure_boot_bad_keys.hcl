image "sb-bad-keys" {
  version = "1.0.0"
  base "debian" { suite = "bookworm" }
  boot {
    firmware                = "uefi"
    secure_boot             = "custom"
    secure_boot_key         = "../keys/encrypted.key" # ERROR: Passphrase-protected key
    secure_boot_certificate = "../keys/db.key" # ERROR: Invalid certificate
    secure_boot_vars        = "../keys/db.pem" # ERROR: Not an OVMF variable store
  }
}
