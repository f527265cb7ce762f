image "duplicate-blocks" {
  version = "1.0.0"
  base "debian" { suite = "bookworm" }
  base "debian" { suite = "trixie" } # ERROR: Duplicate base block
  boot {
    firmware = "uefi"
  }
  boot { # ERROR: Duplicate boot block
    firmware = "uefi"
  }
  disk {
    size = "2GiB"
  }
  disk { # ERROR: Duplicate disk block
    size = "1KiB" # ERROR: Disk too small
  }
  output {
    formats = ["raw"]
  }
  output { # ERROR: Duplicate output block
    formats = ["raw"]
  }
}
