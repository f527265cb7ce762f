image "skip-health" {
  version     = "1.0.0"
  skip_health = ["failed-units", "no-panic"] # ERROR: Unknown health check
  base "debian" { suite = "bookworm" }
}
