# Secure Boot with your own key, no shim: Kiln signs GRUB (with its
# configuration and an OpenPGP copy of your key built in) and the kernel,
# and the test stage boots the image under firmware whose db holds your
# certificate (docs/boot-modes.md says what is signed and why).
#
# To try it with the snakeoil key of Debian's ovmf package (for tests only):
#   openssl pkey -in /usr/share/ovmf/PkKek-1-snakeoil.key -passin pass:snakeoil -out snakeoil.key
#   kiln build -var key=$PWD/snakeoil.key -var certificate=/usr/share/ovmf/PkKek-1-snakeoil.pem \
#     -var vars=/usr/share/OVMF/OVMF_VARS_4M.snakeoil.fd examples/secure-boot-custom.hcl
kiln { required_version = ">= 0.1" }

variable "key" {
  description = "PEM RSA private key without a passphrase (relative to this recipe or absolute)"
}

variable "certificate" {
  description = "PEM certificate of that key, enrolled in the firmware's db"
}

variable "vars" {
  description = "OVMF variable store with the certificate in db and Secure Boot enabled, for the test VM"
}

image "secure-boot-custom" {
  version = "1.0.0"

  base "debian" { suite = "trixie" }

  boot {
    firmware                = "uefi"
    secure_boot             = "custom"
    secure_boot_key         = var.key
    secure_boot_certificate = var.certificate
    secure_boot_vars        = var.vars
  }
  disk { size = "2GiB" }

  test "shell" "kernel-locked-down" {
    inline = [
      "dmesg | grep 'secureboot: Secure boot enabled'",
      "grep -q '\\[integrity\\]' /sys/kernel/security/lockdown",
      # GRUB checked this signature before it started the kernel.
      "test -s /boot/vmlinuz-$(uname -r).sig",
    ]
  }

  output {
    formats  = ["raw"]
    compress = "none"
  }
}
