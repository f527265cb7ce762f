# Build steps are cached unless cache = false; any action takes it.
image "cache" {
  version = "1.0.0"
  base "debian" { suite = "trixie" }
  build "packages" "nginx" { install = ["nginx"] }
  build "shell" "stamp" {
    inline = ["date > /etc/built-at"]
    cache  = false
  }
  build "file" "motd" {
    destination = "/etc/motd"
    content     = "hello\n"
    cache       = true
  }
}
