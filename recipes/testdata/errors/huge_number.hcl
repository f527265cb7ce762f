# Number literals far out of range are refused before anything is evaluated:
# turning 1e99999999 into text would take minutes.
image "huge-number" {
  version     = "1.0.0"
  description = "${1e99999999}" # ERROR: Number out of range
  base "debian" {
    suite = 1e-99999999 # ERROR: Number out of range
  }
  disk {
    size  = 1e77
    table = "2E-99999999" # ERROR: Number out of range
  }
}
