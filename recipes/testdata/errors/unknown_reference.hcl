variable "suite" {
  default = "trixie"
}

variable "packages" {
  type    = list(string)
  default = ["curl"]
}

image "unknown-reference" {
  version     = "1.0.0"
  description = "built from ${var.siute}" # ERROR: Reference to undeclared variable
  base "debian" {
    suite    = var.suite
    packages = var.pakages # ERROR: Reference to undeclared variable
  }
  build "shell" "x" {
    inline = [format("echo %s", var.nothing_like_it)] # ERROR: Reference to undeclared variable
  }
}
