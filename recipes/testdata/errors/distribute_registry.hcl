image "distribute-registry" {
  version = "1.0.0"
  base "debian" { suite = "bookworm" }
  distribute "ok" {
    images        = "oci://127.0.0.1:5000/images/web"
    containerdisk = true
  }
  distribute "tagged" { images = "oci://127.0.0.1:5000/images/web:1.0.0" } # ERROR: Invalid registry
  distribute "dir" {
    images     = "/srv/mirror"
    plain_http = true # ERROR: Not a registry target
  }
}
