component "sshd-hardening" {
  version     = "1.0.0"
  description = "OpenSSH server with key-only logins and a restrictive configuration."

  parameter "permit_root_login" {
    type    = string
    default = "no"
    allowed = ["no", "prohibit-password", "yes"]
  }
  parameter "password_authentication" {
    type    = bool
    default = false
  }
  parameter "port" {
    type    = number
    default = 22
  }
  parameter "allow_users" {
    type        = list(string)
    default     = []
    description = "AllowUsers; empty allows every user"
  }

  build "packages" "openssh-server" {
    install = ["openssh-server"]
    timeout = "20m"
    retries = 2
  }
  build "file" "config" {
    destination = "/etc/ssh/sshd_config.d/50-kiln-hardening.conf"
    mode        = "0600"
    content     = <<-EOT
      # written by kiln's sshd-hardening component
      Port ${param.port}
      PermitRootLogin ${param.permit_root_login}
      PasswordAuthentication ${param.password_authentication ? "yes" : "no"}
      KbdInteractiveAuthentication no
      PermitEmptyPasswords no
      X11Forwarding no
      MaxAuthTries 3
      LoginGraceTime 30
      %{if length(param.allow_users) > 0}AllowUsers ${join(" ", param.allow_users)}%{endif}
    EOT
  }
  validate "shell" "config" {
    # sshd -t needs host keys: make throwaway ones (generalisation removes them).
    inline = [
      "ssh-keygen -A >/dev/null",
      "mkdir -p /run/sshd",
      "/usr/sbin/sshd -t",
      "rm -f /etc/ssh/ssh_host_*",
    ]
  }
  test "shell" "effective" {
    inline = [
      "sshd -T | grep -qx 'permitrootlogin ${param.permit_root_login}'",
      "sshd -T | grep -qx 'passwordauthentication ${param.password_authentication ? "yes" : "no"}'",
      "sshd -T | grep -qx 'port ${param.port}'",
      "systemctl is-active ssh.service",
    ]
  }
}
