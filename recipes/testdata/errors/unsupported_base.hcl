image "unsupported-base" {
  version = "1.0.0"
  base "ubuntu" { # ERROR: Unsupported base type
    suite = "noble"
  }
}
