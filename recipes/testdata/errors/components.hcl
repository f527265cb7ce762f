image "components" {
  version = "1.0.0"
  base "debian" { suite = "bookworm" }

  component "ngnix" { # ERROR: Unknown component
    version = "1.x.x"
  }
  component "apt-packages" {
    version    = "7.x.x" # ERROR: Unresolvable component version
    parameters = { packages = ["curl"] }
  }
  component "qemu-guest-agent" {
    version = "1.x.2" # ERROR: Invalid version constraint
  }
  component "sshd-hardening" {
    version = "1.x.x"
    parameters = {
      permit_root_login = "always" # ERROR: Invalid parameter value
      port              = "ssh" # ERROR: Incorrect parameter type
      banner            = "hi" # ERROR: Unknown component parameter
    }
  }
  component "users" { # ERROR: Missing component parameter
    version = "1.0.0"
  }
  component "serial-console" {
    version    = "1.0.0"
    parameters = { baud = 2400 } # ERROR: Invalid parameter value
  }
  component "serial-console" { # ERROR: Duplicate component
    version = "1.0.0"
  }
  component "cloud-init-nocloud" { # ERROR: Missing required argument
  }
}
