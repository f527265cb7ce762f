variable "suite" {
  type    = string
  default = "buster" # ERROR: Invalid value for variable

  validation {
    condition     = contains(["bookworm", "trixie"], var.suite)
    error_message = "The suite must be bookworm or trixie, the releases Kiln builds."
  }
}

variable "hostname" {
  default = "Web_1" # ERROR: Invalid value for variable # ERROR: Invalid value for variable

  validation {
    condition     = can(regex("^[a-z0-9-]+$", var.hostname))
    error_message = "A hostname has lowercase letters, digits and dashes: ${var.hostname} does not."
  }
  validation {
    condition     = length(var.hostname) <= 4
    error_message = "A hostname has at most 4 characters here."
  }
}

variable "port" {
  type    = number
  default = 8080

  validation {
    condition     = "sometimes" # ERROR: Invalid validation condition
    error_message = "Never shown."
  }
  validation { # ERROR: Missing required argument
    condition = var.port > 0
  }
}

image "validation" {
  version = "1.0.0"
  base "debian" {
    suite = var.suite
  }
}
