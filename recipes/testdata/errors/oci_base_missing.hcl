image "oci-base-missing" {
  version = "1.0.0"
  base "oci" { plain_http = true } # ERROR: Missing required argument
}
