# A web server image built from components: nginx and curl from the built-in
# apt-packages component, a recipe-local static-site component (a page
# written by a file step, nginx configured from a template) whose test
# fetches the page from inside the booted guest, and the built-in
# serial-console component.
kiln {
  required_version = ">= 0.1"
  component_paths  = ["components"]
}

variable "suite" { default = "trixie" }

image "web-server" {
  version = "1.0.0"

  base "debian" { suite = var.suite }
  boot { firmware = "uefi" }
  disk { size = "2GiB" }

  component "apt-packages" {
    version    = "1.x.x"
    parameters = { packages = ["nginx", "curl"] }
  }

  component "static-site" {
    version    = "1.0.x"
    parameters = { port = 8080, message = "Hello from a Kiln-built web server" }
  }

  component "serial-console" {
    version = "x.x.x"
  }

  test "shell" "nginx-running" {
    inline = ["systemctl is-active nginx.service"]
  }

  output { formats = ["raw"] }
}
