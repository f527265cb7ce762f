# Values come from testdata/vars/prod.hcl (see the test).
variable "suite" {
  default = "bookworm"
}

variable "packages" {
  type    = list(string)
  default = []
}

variable "size" {
  default = "2GiB"
}

image "from-var-file" {
  version = "1.0.0"

  base "debian" {
    suite    = var.suite
    packages = var.packages
  }

  disk {
    size = var.size
  }
}
