image "syntax" {
  version = "1.0.0"
  base "debian" { suite = "bookworm" }
  disk {
    size = # ERROR: Invalid expression
  }
}
