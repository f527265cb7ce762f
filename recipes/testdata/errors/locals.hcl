variable "suite" {
  default = "trixie"
}

locals {
  a    = "${local.b}-x" # ERROR: Cycle in local values
  b    = upper(local.c)
  c    = local.a
  self = local.self # ERROR: Cycle in local values
  name = "web-${var.suite}"
}

locals {
  name    = "again" # ERROR: Duplicate local value
  version = "1.0.0"
}

image "locals" {
  version     = local.version
  description = local.naem # ERROR: Reference to undeclared local value
  base "debian" {
    suite = local.a
  }
}
