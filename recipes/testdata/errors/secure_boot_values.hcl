image "sb-values" {
  version = "1.0.0"
  base "debian" { suite = "bookworm" }
  boot {
    firmware    = "uefi"
    secure_boot = "on" # ERROR: Invalid Secure Boot mode
    tpm         = "yes please" # ERROR: Incorrect attribute value type
  }
}
