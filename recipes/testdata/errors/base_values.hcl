image "base-values" {
  version = "1.0.0"
  base "debian" {
    suite      = "book worm"                      # ERROR: Invalid suite
    mirror     = "mirror.example/debian"          # ERROR: Invalid mirror
    components = ["main", "Non Free"]             # ERROR: Invalid component
    packages   = ["curl", "jq vim"]               # ERROR: Invalid package name
    variant    = "tiny"                           # ERROR: Invalid variant
    arch       = "arm64"                          # ERROR: Unsupported architecture
    initramfs_modules = "dep"                     # ERROR: Invalid initramfs_modules
  }
}
