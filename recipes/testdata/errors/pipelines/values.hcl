pipeline "bad-values" {
  recipe       = "../../valid/minimal.hcl"
  schedule     = "0 25 * * *" # ERROR: Invalid schedule
  when         = "sometimes" # ERROR: Invalid when
  time_zone    = "Mars/Olympus_Mons" # ERROR: Unknown time zone
  max_failures = -1 # ERROR: Invalid max_failures
}
