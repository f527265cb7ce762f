image "catalog" {
  version = "1.0.0"
  base "debian" { suite = "bookworm" }
  catalog {
    visibility    = "public" # ERROR: Image cannot be public
    encrypted     = true
    share_with    = ["alice", "bad name"] # ERROR: Invalid principal
    product_codes = ["ok1", "no/slash"] # ERROR: Invalid product code
  }
  catalog { # ERROR: Duplicate catalog block
    visibility = "everyone" # ERROR: Invalid visibility
  }
}
