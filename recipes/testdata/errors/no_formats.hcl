image "no-formats" {
  version = "1.0.0"
  base "debian" { suite = "bookworm" }
  output {
    formats = [] # ERROR: No output formats
  }
}
