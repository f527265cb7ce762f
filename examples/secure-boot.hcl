# Secure Boot with Debian's own signed chain: shim (signed by Microsoft),
# GRUB and the kernel (signed by Debian), on the removable-media path. The
# test stage boots it under firmware that enforces Secure Boot with
# Microsoft's keys enrolled, as Azure Trusted Launch and GCP Shielded VM do,
# with a TPM 2.0 in the VM:
#   kiln build examples/secure-boot.hcl
#   kiln verify --target gcp --secure-boot <the published raw image>
kiln { required_version = ">= 0.1" }

image "secure-boot" {
  version = "1.0.0"

  base "debian" {
    suite    = "trixie"
    packages = ["tpm2-tools"] # for the TPM test below
  }

  boot {
    firmware    = "uefi"
    secure_boot = "distro" # shim-signed, shim-helpers-amd64-signed and grub-efi-amd64-signed are installed for it
    tpm         = true     # the test VM gets a TPM 2.0 (swtpm)
  }
  disk { size = "2GiB" }

  # The secure-boot health check already reads the SecureBoot EFI variable;
  # this test looks at what the kernel made of it.
  test "shell" "kernel-locked-down" {
    inline = [
      "dmesg | grep 'secureboot: Secure boot enabled'",
      "cat /sys/kernel/security/lockdown",
      "grep -q '\\[integrity\\]' /sys/kernel/security/lockdown",
      "mokutil --sb-state | grep 'SecureBoot enabled'",
      # The firmware's db: Microsoft's third-party CA, which signed shim.
      "mokutil --db | grep 'Microsoft Corporation UEFI CA 2011'",
    ]
  }

  # A kernel upgrade in the guest runs update-grub (shim-signed brings
  # grub2-common); Kiln's /etc/default/grub keeps the serial console.
  test "shell" "update-grub-keeps-console" {
    inline = [
      "update-grub",
      "grep 'console=ttyS0,115200' /boot/grub/grub.cfg",
      "test ! -e /boot/efi/EFI/debian/shimx64.efi", # nothing ran grub-install
    ]
  }

  test "shell" "tpm" {
    inline = [
      "test -c /dev/tpm0",
      "tpm2_pcrread sha256:0,4,7",
      # The firmware measured itself (PCR 0) and the boot loaders (PCR 4).
      "for pcr in 0 4; do v=$(tpm2_pcrread sha256:$pcr | awk -v p=\"$pcr\" '$1 == p {print $3}'); echo \"PCR $pcr = $v\"; case \"$v\" in ''|0x0000000000000000000000000000000000000000000000000000000000000000) exit 1 ;; esac; done",
    ]
  }

  output {
    formats  = ["raw"]
    compress = "none"
  }
}
