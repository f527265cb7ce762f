image "import-bases" {
  version = "1.0.0"
  base "file" {
    path   = "no-such-disk.vmdk"  # ERROR: Disk image file not found
    sha256 = "abc123"             # ERROR: Invalid sha256
  }
}
