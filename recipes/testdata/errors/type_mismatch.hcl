variable "packages" {
  type    = list(string)
  default = "curl" # ERROR: Invalid default value
}

variable "ports" {
  type    = map(number)
  default = { http = "eighty" } # ERROR: Invalid default value
}

variable "grow" {
  type    = bool
  default = "sometimes" # ERROR: Invalid default value
}

variable "size" {
  type    = number
  default = 2
}

image "type-mismatch" {
  version = "1.0.0"
  base "debian" {
    suite    = "trixie"
    packages = { curl = true } # ERROR: Incorrect attribute value type
  }
  disk {
    size = "2GiB"
    grow = "yes please" # ERROR: Incorrect attribute value type
  }
  build "shell" "x" {
    inline  = ["true"]
    retries = var.size + 0.5 # ERROR: Incorrect attribute value type
  }
}
