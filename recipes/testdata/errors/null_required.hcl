image "null-required" {
  version = null # ERROR: Missing required argument
  base "debian" {
    suite = null # ERROR: Missing required argument
  }
}
