# A -var-file: top-level arguments set the recipe's variables.
suite    = "trixie"
packages = ["nginx", "curl"]
size     = "8GiB"
