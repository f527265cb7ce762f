# Custom Secure Boot with test keys (testdata/keys: not secret, never used to sign).
image "sb-custom" {
  version = "1.0.0"
  base "debian" { suite = "trixie" }
  boot {
    secure_boot             = "custom"
    secure_boot_key         = "../keys/db.key"
    secure_boot_certificate = "../keys/db.pem"
    secure_boot_vars        = "../keys/vars.fd"
    tpm                     = true
  }
}
