# A child image: it starts from the newest 1.x.x build of debian-minimal in
# the catalog this build publishes to (build examples/debian-minimal.hcl
# first), adds a file, and checks in the booted guest that both the parent's
# change and its own are there. The manifest's "parent" names the build and
# its sha256.
kiln { required_version = ">= 0.1" }

image "debian-child" {
  version = "1.0.0"

  base "image" {
    name    = "debian-minimal"
    version = "1.x.x"
    # include_deprecated = true  # to build on a deprecated parent
  }

  boot { firmware = "uefi" }
  disk { size = "2GiB" }

  build "shell" "greeting" {
    inline = ["echo 'added by the child' > /etc/kiln-child"]
  }

  test "shell" "parent-change-kept" {
    inline = ["grep -q 'built by kiln' /etc/motd"]
  }

  test "shell" "child-change-added" {
    inline = ["grep -q 'added by the child' /etc/kiln-child"]
  }

  test "shell" "mounted-as-declared" {
    inline = [
      "findmnt -n -o FSTYPE / | grep -qx ext4",
      "test -d /boot/efi/EFI", # mounted on first use (disk.esp_automount)
      "findmnt -n -o FSTYPE /boot/efi | grep -qx vfat",
    ]
  }

  output {
    formats  = ["raw"]
    compress = "none"
  }
}
