pipeline "no-recipe" { # ERROR: Missing required argument
  schedule = "@daily"
}

pipeline "no-schedule" { # ERROR: Missing required argument
  recipe = "../../valid/minimal.hcl"
}

pipeline "lost" {
  recipe    = "nowhere.hcl" # ERROR: Recipe not found
  schedule  = "@hourly"
  var_files = ["../../valid/minimal.hcl", "missing.vars.hcl"] # ERROR: Variables file not found
}
