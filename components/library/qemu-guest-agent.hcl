component "qemu-guest-agent" {
  version     = "1.0.0"
  description = "The QEMU guest agent; udev starts it when the host gives the VM a virtio-serial channel."

  build "packages" "agent" {
    install = ["qemu-guest-agent"]
    timeout = "20m"
    retries = 2
  }
  validate "shell" "installed" {
    inline = ["test -x /usr/sbin/qemu-ga"]
  }
  test "shell" "binary" {
    inline = ["/usr/sbin/qemu-ga --version"]
  }
}
