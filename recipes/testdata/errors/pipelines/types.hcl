pipeline "types" {
  recipe       = ["a.hcl"] # ERROR: Incorrect attribute value type
  schedule     = "*/5 * * * mon-funday" # ERROR: Invalid schedule
  max_failures = 1.5 # ERROR: Incorrect attribute value type
  variables    = "suite=trixie" # ERROR: Incorrect attribute value type
}

image "not-here" { # ERROR: Unsupported block type
}
