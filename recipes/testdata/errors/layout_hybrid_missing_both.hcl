# The default firmware is hybrid, which needs both an ESP and a BIOS boot
# partition on GPT; with no boot block both errors point at the disk block.
image "x" {
  version = "1.0.0"
  base "debian" { suite = "bookworm" }
  disk { # ERROR: Missing EFI system partition # ERROR: Missing BIOS boot partition
    size = "2GiB"
    partition "root" {
      size = "rest"
      type = "root"
    }
  }
}
