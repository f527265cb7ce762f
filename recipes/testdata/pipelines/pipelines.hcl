# Two pipelines over the valid test recipes.
pipeline "nightly" {
  recipe   = "../valid/minimal.hcl"
  schedule = "0 3 * * *"
}

pipeline "weekly-full" {
  recipe        = "../valid/variables.hcl"
  schedule      = "30 4 * * sun"
  when          = "always"
  time_zone     = "Europe/Berlin"
  max_failures  = 0
  variables     = { suite = "trixie", release = "2.0.0" }
  var_files     = ["weekly.vars.hcl"]
  registry      = "oci://registry.example:5000/images/full"
  containerdisk = true
  kvm           = true

  lifecycle {
    keep_last       = 3
    deprecate_after = "30d"
  }
}
