locals {
  motd   = file("no-such-file.txt")                   # ERROR: Invalid function argument
  config = templatefile("no-such.tpl", { name = "x" }) # ERROR: Invalid function argument
  bad    = jsondecode("{not json")                     # ERROR: Error in function call
}

image "functions" {
  version     = "1.0.0"
  description = uper("x") # ERROR: Call to unknown function
  base "debian" {
    suite = trimspace(42, 43) # ERROR: Too many function arguments
  }
}
