image "missing-import-args" {
  version = "1.0.0"
  base "file" {} # ERROR: Missing required argument # ERROR: Missing required argument
}
