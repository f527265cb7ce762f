image "unknown-block" {
  version = "1.0.0"
  base "debian" { suite = "bookworm" }
  network { # ERROR: Unsupported block type
    dhcp = true
  }
  boot {
    grub {} # ERROR: Unsupported block type
  }
}

images "typo" { # ERROR: Unsupported block type
}
