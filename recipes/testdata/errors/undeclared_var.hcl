variable "suite" {
  default = "bookworm"
}

image "undeclared-var" {
  version = "1.0.0"
  base "debian" {
    suite  = var.suit   # ERROR: Reference to undeclared variable
    mirror = vars.mirror # ERROR: Unknown variable
  }
  description = nosuch("x") # ERROR: Call to unknown function
}
