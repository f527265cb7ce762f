component "system-settings" {
  version     = "1.0.0"
  description = "Hostname, timezone and locale."

  parameter "hostname" {
    type        = string
    default     = ""
    description = "\"\" keeps the image's name"
    pattern     = "^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)?$"
  }
  parameter "timezone" {
    type        = string
    default     = "Etc/UTC"
    description = "a name under /usr/share/zoneinfo"
    pattern     = "^[A-Za-z0-9_+-]+(/[A-Za-z0-9_+-]+)*$"
  }
  parameter "locale" {
    type        = string
    default     = "C.UTF-8"
    description = "LANG; other than C.UTF-8 installs locales and generates it"
    pattern     = "^[A-Za-z0-9_.@-]+$"
  }

  build "shell" "timezone" {
    inline = [
      "if [ ! -e /usr/share/zoneinfo/${param.timezone} ]; then DEBIAN_FRONTEND=noninteractive apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends tzdata && apt-get clean; fi",
      "ln -sf /usr/share/zoneinfo/${param.timezone} /etc/localtime",
      "echo ${param.timezone} > /etc/timezone",
    ]
    timeout = "10m"
    retries = 1
  }
  build "shell" "locale" {
    inline = [
      "if [ ${param.locale} != C.UTF-8 ] && [ ${param.locale} != C ] && [ ${param.locale} != POSIX ]; then",
      "  DEBIAN_FRONTEND=noninteractive apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends locales && apt-get clean",
      "  l=${param.locale}; grep -q \"^$l \" /etc/locale.gen || echo \"$l $${l#*.}\" >> /etc/locale.gen",
      "  sed -i \"s/^# *\\($l \\)/\\1/\" /etc/locale.gen",
      "  locale-gen",
      "fi",
      "echo LANG=${param.locale} > /etc/default/locale",
    ]
    timeout = "10m"
    retries = 1
  }
  build "shell" "hostname" {
    inline = ["if [ -n '${param.hostname}' ]; then echo '${param.hostname}' > /etc/hostname; fi"]
  }
  validate "shell" "settings" {
    inline = [
      "test -e /etc/localtime",
      "grep -qx 'LANG=${param.locale}' /etc/default/locale",
    ]
  }
  test "shell" "settings" {
    inline = [
      "test \"$(cat /etc/timezone)\" = '${param.timezone}'",
      "test -z '${param.hostname}' || test \"$(hostname)\" = '${param.hostname}'",
      "grep -qx 'LANG=${param.locale}' /etc/default/locale",
    ]
  }
}
