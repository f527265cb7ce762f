pipeline "bad-lifecycle" {
  recipe   = "../../valid/minimal.hcl"
  schedule = "@daily"

  lifecycle {
    keep_last = 0 # ERROR: Invalid keep_last
  }

  lifecycle { # ERROR: Duplicate lifecycle block
    keep_last = 2
  }
}
