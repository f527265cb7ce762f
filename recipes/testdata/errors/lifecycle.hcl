image "lifecycle" {
  version = "1.0.0"
  base "debian" { suite = "bookworm" }
  lifecycle {
    keep_last       = 0 # ERROR: Invalid keep_last
    deprecate_after = "90 days" # ERROR: Invalid age
    delete_after    = "1y" # ERROR: Invalid age
  }
  lifecycle { # ERROR: Duplicate lifecycle block
    deprecate_after = "90d"
    delete_after    = "30d" # ERROR: Invalid delete_after
    keep_forever    = true # ERROR: Unsupported argument
  }
}
