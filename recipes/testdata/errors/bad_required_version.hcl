kiln {
  required_version = "newest" # ERROR: Invalid required_version
}

kiln { # ERROR: Duplicate kiln block
}

image "bad-required-version" {
  version = "1.0.0"
  base "debian" { suite = "bookworm" }
}
