# The weekly pipeline's variables file (var_files).
packages = ["curl", "jq"]
