pipeline "tagged" {
  recipe   = "../../valid/minimal.hcl"
  schedule = "0 3 * * *"
  registry = "oci://registry.example/images/web:1.0.0" # ERROR: Invalid registry
  kvm      = "yes" # ERROR: Incorrect attribute value type
}

pipeline "no-registry" {
  recipe        = "../../valid/minimal.hcl"
  schedule      = "0 4 * * *"
  containerdisk = true # ERROR: No registry
}
