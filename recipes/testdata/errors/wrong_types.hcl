image "wrong-types" {
  version     = "1.0.0"
  description = ["not", "a", "string"] # ERROR: Incorrect attribute value type
  base "debian" {
    suite      = "bookworm"
    components = "main" # ERROR: Incorrect attribute value type
    packages   = null
  }
  boot {
    kernel_cmdline = { quiet = true } # ERROR: Incorrect attribute value type
  }
  disk {
    size     = true # ERROR: Incorrect attribute value type
    esp_size = 1.5  # ERROR: Invalid size
    esp_automount = "sometimes" # ERROR: Incorrect attribute value type
  }
  build "shell" "x" {
    inline      = "echo hi > /etc/motd" # ERROR: Incorrect attribute value type
    environment = ["A=1"]               # ERROR: Incorrect attribute value type
    timeout     = 10                    # ERROR: Invalid timeout
  }
  build "shell" "y" {
    inline = ["true", null] # ERROR: Null list element
  }
  output {
    formats = "raw" # ERROR: Incorrect attribute value type
  }
}
