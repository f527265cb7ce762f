image "first" {
  version = "1.0.0"
  base "debian" { suite = "bookworm" }
}

image "second" { # ERROR: Duplicate image block
  version = "1.0.0"
  base "debian" { suite = "bookworm" }
}
