image "lint" {
  version = "1.0.0"
  base "debian" { suite = "bookworm" }
  lint {
    allow = [
      "/etc/ssl/private/*.key",
      "etc/app/token", # ERROR: Invalid allowed path
      "/etc/[x",       # ERROR: Invalid allowed path
      "/etc/ssl/private/*.key", # ERROR: Duplicate allowed path
    ]
  }
  lint { allow = [] } # ERROR: Duplicate lint block
}
