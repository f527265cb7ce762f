image "missing-suite" {
  version = "1.0.0"
  base "debian" { # ERROR: Missing required argument
    packages = ["curl"]
  }
}
