image "formats" {
  version = "1.0.0"
  base "debian" { suite = "bookworm" }
  output {
    formats = [
      "raw",
      "iso",   # ERROR: Invalid output format
      "qcow2",
      "vhdx",
      "ova",
      "raw",   # ERROR: Duplicate output format
    ]
    compress       = "lz4" # ERROR: Invalid compress
    vmdk_subformat = "flat" # ERROR: Invalid vmdk_subformat
    vhd_subformat  = "differencing" # ERROR: Invalid vhd_subformat
    cpus           = 0 # ERROR: Invalid cpus
    memory         = "64MiB" # ERROR: Invalid memory
  }
}
