image "no-base" { # ERROR: Missing base block
  version = "1.0.0"
}
