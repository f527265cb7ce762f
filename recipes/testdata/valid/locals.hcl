# Locals, functions, validation and a sensitive variable: the recipe
# language beyond constants.
variable "suite" {
  type    = string
  default = "trixie"

  validation {
    condition     = contains(["bookworm", "trixie"], var.suite)
    error_message = "Kiln builds bookworm and trixie."
  }
}

variable "extra_packages" {
  type    = list(string)
  default = ["jq"]
}

variable "token" {
  type      = string
  sensitive = true
  default   = "not-a-real-token"
}

locals {
  name     = "web-${var.suite}"
  packages = distinct(concat(["curl"], var.extra_packages, ["curl"]))
  env      = merge({ SUITE = upper(var.suite) }, { TOKEN = var.token })
  setup    = file("scripts/setup.sh")
  size     = format("%dMiB", 2048 + length(local.packages))
}

image "locals" {
  version     = "1.0.0"
  description = "${local.name}: ${join(", ", local.packages)} (${sha256(local.setup)})"

  base "debian" {
    suite    = var.suite
    packages = local.packages
  }

  disk {
    size = local.size
  }

  build "shell" "env" {
    inline      = ["echo \"$SUITE\" > /etc/suite"]
    environment = local.env
  }
}
