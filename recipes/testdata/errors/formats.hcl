image "formats" {
  version = "1.0.0"
  base "debian" { suite = "bookworm" }
  output {
    formats = [
      "raw",
      "iso",   # ERROR: Invalid output format
      "qcow2", # ERROR: Output format not supported yet
      "vhdx",  # ERROR: Output format not supported yet
      "raw",   # ERROR: Duplicate output format
    ]
  }
}
