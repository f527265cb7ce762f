image "lifecycle" {
  version = "1.0.0"
  base "debian" { suite = "bookworm" }
  lifecycle { # ERROR: Empty lifecycle rule
  }
}
