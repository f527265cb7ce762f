component "apt-packages" {
  version     = "1.0.0"
  description = "Install (and optionally remove) Debian packages with apt."

  parameter "packages" {
    type        = list(string)
    description = "packages to install"
  }
  parameter "remove" {
    type        = list(string)
    default     = []
    description = "packages to purge"
  }

  build "packages" "install" {
    install = param.packages
    timeout = "20m"
    retries = 2
  }
  build "shell" "remove" {
    inline = [
      "export DEBIAN_FRONTEND=noninteractive",
      "for p in ${join(" ", param.remove)}; do apt-get purge -y \"$p\"; done",
      "apt-get autoremove -y --purge",
    ]
  }
  validate "shell" "installed" {
    inline = ["dpkg-query -W -f='$${Package} $${Status}\\n' ${join(" ", param.packages)} | awk '$4 != \"installed\" { print \"not installed: \" $1; bad = 1 } END { exit bad }'"]
  }
  test "shell" "installed" {
    inline = ["dpkg-query -W -f='$${Package} $${Status}\\n' ${join(" ", param.packages)} | awk '$4 != \"installed\" { print \"not installed: \" $1; bad = 1 } END { exit bad }'"]
  }
}
