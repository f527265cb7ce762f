component "serial-console" {
  version     = "1.0.0"
  description = "A login prompt on a serial port."

  parameter "tty" {
    type    = string
    default = "ttyS0"
    pattern = "^tty[A-Za-z]+[0-9]+$"
  }
  parameter "baud" {
    type    = number
    default = 115200
    allowed = [9600, 19200, 38400, 57600, 115200]
  }

  build "file" "baud" {
    destination = "/etc/systemd/system/serial-getty@${param.tty}.service.d/kiln-baud.conf"
    content     = "[Service]\nExecStart=\nExecStart=-/sbin/agetty --keep-baud ${param.baud} %I $TERM\n"
  }
  build "service" "enable" {
    enable = ["serial-getty@${param.tty}.service"]
  }
  validate "shell" "enabled" {
    inline = ["test -L /etc/systemd/system/getty.target.wants/serial-getty@${param.tty}.service"]
  }
  test "shell" "running" {
    inline = ["systemctl is-active serial-getty@${param.tty}.service"]
  }
}
