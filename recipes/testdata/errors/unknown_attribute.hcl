image "unknown-attribute" {
  version = "1.0.0"
  base "debian" {
    suite  = "bookworm"
    mirorr = "http://mirror.example/debian" # ERROR: Unsupported argument
  }
  disk {
    size = "2GiB"
    sise = "2GiB" # ERROR: Unsupported argument
  }
  name = "x" # ERROR: Unsupported argument
}
