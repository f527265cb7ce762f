pipeline "web" {
  recipe   = "../../valid/minimal.hcl"
  schedule = "@daily"
}

pipeline "web" { # ERROR: Duplicate pipeline
  recipe   = "../../valid/minimal.hcl"
  schedule = "@weekly"
}

pipeline "-bad name" { # ERROR: Invalid pipeline name
  recipe   = "../../valid/minimal.hcl"
  schedule = "@weekly"
  lifecycle = "keep 3" # ERROR: Unsupported argument
}
