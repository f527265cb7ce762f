image "sharing" {
  version = "1.0.0"
  base "debian" { suite = "bookworm" }
  catalog {
    visibility = "shared" # ERROR: Nobody to share with
    product_codes = ["a1b2c3"]
  }
  distribute "eu" { images = "/srv/eu/images" }
  distribute "eu" { images = "/srv/other" } # ERROR: Duplicate distribute block
  distribute "us" {
    images = "/srv/eu/images" # ERROR: Duplicate distribution target
  }
  distribute "bad name" { images = "x" } # ERROR: Invalid distribution name
  distribute "empty" { # ERROR: Missing required argument
  }
}
