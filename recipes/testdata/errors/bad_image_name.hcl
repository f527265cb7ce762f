image "Debian Minimal!" { # ERROR: Invalid image name
  version = "1.0.0"
  base "debian" { suite = "bookworm" }
}
