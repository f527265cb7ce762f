# Every block and argument, set to a non-default value where one exists.
kiln { required_version = ">= 0.1, < 1.0" }

image "full.image_1" {
  version     = "2.10.3"
  description = "Every argument set"

  base "debian" {
    suite      = "trixie"
    mirror     = "http://mirror.example/debian"
    components = ["main", "contrib", "non-free-firmware"]
    packages   = ["curl", "ca-certificates"]
    variant    = "standard"
    arch       = "amd64"
    initramfs_modules = "most"
  }

  boot {
    firmware       = "uefi"
    kernel_cmdline = ["console=ttyS0", "quiet"]
    menu_timeout   = "5s"
    update_at_first_boot = true
  }

  disk {
    size     = "4GiB"
    table    = "gpt"
    esp_size = "64MiB"
  }

  build "shell" "packages" {
    inline      = ["apt-get update", "apt-get install -y jq"]
    environment = { DEBIAN_FRONTEND = "noninteractive", RETRIES = 3 }
    timeout     = "45m"
  }

  build "shell" "setup" {
    script = "scripts/setup.sh"
  }

  test "shell" "jq" {
    inline  = ["jq --version"]
    timeout = "90s"
  }

  # A test may share a build step's name.
  test "shell" "setup" {
    script = "scripts/setup.sh"
  }

  output {
    formats = ["raw"]
  }
}
