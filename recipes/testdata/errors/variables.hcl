variable "suite" {
  default = "bookworm"
}

variable "suite" { # ERROR: Duplicate variable
  default = "trixie"
}

variable "release" { # ERROR: No value for required variable
  type = string
}

variable "count" {
  type    = number
  default = "many" # ERROR: Invalid default value
}

variable "quoted" {
  type    = "string" # ERROR: Invalid type constraint
  default = "x"
}

variable "bare_list" {
  type    = list # ERROR: Invalid type constraint
  default = ["x"]
}

variable "weird" {
  type    = set(string) # ERROR: Invalid type constraint
  default = ["x"]
}

variable "self" {
  default = var.suite # ERROR: Variables not allowed
}

variable "9lives" { # ERROR: Invalid variable name
  default = "x"
  secret  = true # ERROR: Unsupported argument
}

variable "password" {
  default   = "x"
  sensitive = "yes please" # ERROR: Invalid sensitive value
}

image "variables" {
  version = var.release
  base "debian" { suite = var.suite }
  disk { size = var.count }
}
