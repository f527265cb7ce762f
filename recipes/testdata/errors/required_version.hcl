# A recipe for a newer format: only that is reported, not the new syntax.
kiln {
  required_version = ">= 9.0" # ERROR: Unsupported recipe format version
}

image "future" {
  version = "1.0.0"
  base "debian" { suite = "bookworm" }
  gpu "nvidia" {}
}
