# ERROR: Missing image block
variable "suite" {
  default = "bookworm"
}
