image "syntax-many" {
  version = "1.0.0"
  base "debian" {
    suite = "trixie"
  }
  disk {
    size = "2GiB"
    partition "ESP" { size = "256MiB" type = "esp" } # ERROR: Invalid single-argument block definition
    partition "root" { size = "rest" type = "root" } # ERROR: Invalid single-argument block definition
  }
  build "shell" "motd" {
    inline = ["echo hi"] timeout = "1m" # ERROR: Missing newline after argument
  }
  description = # ERROR: Invalid expression
}
