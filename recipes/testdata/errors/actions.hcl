image "actions" {
  version = "1.0.0"
  base "debian" { suite = "bookworm" }

  build "file" "relative" {
    destination = "etc/motd" # ERROR: Invalid destination
    content     = "hi"
  }
  build "file" "neither" { # ERROR: Missing source or content
    destination = "/etc/motd"
  }
  build "file" "both" {
    destination = "/etc/motd"
    source      = "motd"
    content     = "hi" # ERROR: Both source and content are set
  }
  build "file" "outside" {
    destination = "/etc/passwd-copy"
    source      = "/etc/passwd" # ERROR: Source outside the directory
  }
  build "file" "mode" {
    destination = "/etc/motd"
    content     = "hi"
    mode        = "rwxr-xr-x" # ERROR: Invalid mode
  }
  build "packages" "nothing" { # ERROR: No packages
    update = false
  }
  build "packages" "bad-name" {
    install = ["Nginx Light"] # ERROR: Invalid package name
  }
  build "service" "bad-unit" {
    enable = ["-nginx"] # ERROR: Invalid unit name
  }
  build "user" "bad-user" {
    name = "Root User" # ERROR: Invalid user name
  }
  build "download" "no-sha" { # ERROR: Missing required argument
    url         = "https://example.org/tool"
    destination = "/usr/local/bin/tool"
  }
  build "download" "short-sha" {
    url         = "ftp://example.org/tool" # ERROR: Invalid url
    sha256      = "abc123" # ERROR: Invalid sha256
    destination = "/usr/local/bin/tool"
  }
  build "shell" "retries" {
    inline  = ["true"]
    retries = -1 # ERROR: Invalid retries
  }
  build "shell" "policy" {
    inline     = ["true"]
    on_failure = "ignore" # ERROR: Invalid on_failure
  }
  build "shell" "uncached" {
    inline = ["date > /etc/built-at"]
    cache  = false
  }
  build "shell" "cache-type" {
    inline = ["true"]
    cache  = "no" # ERROR: Incorrect attribute value type
  }
  validate "shell" "cached-check" {
    inline = ["true"]
    cache  = false # ERROR: cache is for build steps
  }
  test "packages" "cached-test" {
    install = ["curl"]
    cache   = true # ERROR: cache is for build steps
  }
  build "rsync" "unknown" { # ERROR: Unsupported step type
    source = "x"
  }
}
