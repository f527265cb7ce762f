kiln {
  component_paths = ["no-such-directory"] # ERROR: Component directory not found
}

image "paths" {
  version = "1.0.0"
  base "debian" { suite = "bookworm" }
}
