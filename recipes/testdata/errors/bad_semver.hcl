image "bad-semver" {
  version = "v1.0" # ERROR: Invalid version
  base "debian" { suite = "bookworm" }
}
