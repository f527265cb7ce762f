image "boot-values" {
  version = "1.0.0"
  base "debian" { suite = "trixie" }
  boot {
    menu_timeout         = "1.5s" # ERROR: Invalid menu timeout
    update_at_first_boot = "yes"  # ERROR: Incorrect attribute value type
  }
}
