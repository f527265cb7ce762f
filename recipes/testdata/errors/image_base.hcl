image "image-base" {
  version = "1.0.0"
  base "image" {
    name               = "Debian Base" # ERROR: Invalid image name
    version            = "1.x.2"       # ERROR: Invalid version selector
    include_deprecated = "sometimes"   # ERROR: Incorrect attribute value type
  }
}
