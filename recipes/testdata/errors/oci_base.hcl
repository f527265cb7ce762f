image "oci-base" {
  version = "1.0.0"
  base "oci" {
    ref        = "registry.example/images/web" # ERROR: Invalid registry reference
    plain_http = "yes" # ERROR: Incorrect attribute value type
  }
}
