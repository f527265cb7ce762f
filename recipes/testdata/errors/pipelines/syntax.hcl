pipeline "broken" {
  recipe = "../../valid/minimal.hcl"
  schedule "@daily" # ERROR: Invalid block definition
}
