component "users" {
  version     = "1.0.0"
  description = "A login user with SSH authorized keys, groups and optional passwordless sudo."

  parameter "name" {
    type        = string
    description = "user name"
    pattern     = "^[a-z_][a-z0-9_-]{0,31}$"
  }
  parameter "authorized_keys" {
    type        = list(string)
    default     = []
    description = "lines for ~/.ssh/authorized_keys"
  }
  parameter "groups" {
    type        = list(string)
    default     = []
    description = "supplementary groups, created when missing"
  }
  parameter "sudo" {
    type        = bool
    default     = false
    description = "passwordless sudo (installs sudo)"
  }
  parameter "shell" {
    type    = string
    default = "/bin/bash"
  }

  build "shell" "sudo-package" {
    inline  = ["if ${param.sudo} && ! command -v sudo >/dev/null; then DEBIAN_FRONTEND=noninteractive apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends sudo && apt-get clean; fi"]
    timeout = "10m"
    retries = 2
  }
  build "user" "user" {
    name            = param.name
    groups          = param.groups
    authorized_keys = param.authorized_keys
    sudo            = param.sudo
    shell           = param.shell
  }
  validate "shell" "user" {
    inline = [
      "id ${param.name}",
      "home=$(getent passwd ${param.name} | cut -d: -f6)",
      "test ${length(param.authorized_keys)} -eq 0 || test \"$(stat -c %a \"$home/.ssh/authorized_keys\")\" = 600",
    ]
  }
  test "shell" "user" {
    inline = [
      "id ${param.name}",
      "! ${param.sudo} || sudo -n -u ${param.name} sudo -n true",
    ]
  }
}
