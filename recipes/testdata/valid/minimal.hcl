# The smallest valid recipe: everything else takes its default.
image "minimal" {
  version = "0.1.0"
  base "debian" { suite = "bookworm" }
}
