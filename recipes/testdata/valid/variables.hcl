# Variables of every type, used in the image. The test sets var.release
# with -var, since it has no default.
variable "suite" {
  type        = string
  default     = "bookworm"
  description = "Debian suite"
}

variable "disk_bytes" {
  type    = number
  default = 3221225472
}

variable "serial_console" {
  type    = bool
  default = true
}

variable "packages" {
  type    = list(string)
  default = ["curl", "jq"]
}

variable "step_env" {
  type    = map(string)
  default = { GREETING = "hello" }
}

variable "anything" {
  type    = any
  default = { nested = [1, 2.5, true], name = "x" }
}

variable "untyped" {
  default = "raw"
}

variable "release" {
  type = string
}

image "variables" {
  version     = var.release
  description = upper("built from ${var.suite}")

  base "debian" {
    suite    = var.suite
    packages = var.packages
  }

  boot {
    kernel_cmdline = var.serial_console ? ["console=ttyS0"] : []
  }

  disk {
    size = var.disk_bytes
  }

  build "shell" "greet" {
    inline      = [format("echo %s > /etc/greeting", var.step_env["GREETING"]), join(" ", ["echo", var.anything.name])]
    environment = var.step_env
  }

  output {
    formats = [lower(replace("RAW-", "-", ""))]
  }
}
