image "no-version" { # ERROR: Missing required argument
  base "debian" { suite = "bookworm" }
}
