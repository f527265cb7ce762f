image "private" {
  version = "1.0.0"
  base "debian" { suite = "bookworm" }
  catalog {
    visibility = "private" # ERROR: Private image shared
    share_with = ["alice"]
  }
  distribute "blank" {
    images = "" # ERROR: Empty distribution target
  }
}
