image "steps" {
  version = "1.0.0"
  base "debian" { suite = "bookworm" }

  build "shell" "setup" {
    inline = ["true"]
  }
  build "shell" "setup" { # ERROR: Duplicate step name
    inline = ["true"]
  }
  build "shell" "both" {
    inline = ["true"]
    script = "setup.sh" # ERROR: Both inline and script are set
  }
  build "shell" "neither" { # ERROR: Missing inline or script
    timeout = "1m"
  }
  build "shell" "missing-script" {
    script = "no-such-script.sh" # ERROR: Script file not found
  }
  build "shell" "bad-timeout" {
    inline  = ["true"]
    timeout = "ten minutes" # ERROR: Invalid timeout
  }
  build "ansible" "playbook" { # ERROR: Unsupported step type
    playbook = "site.yml"
  }
  build "shell" "bad name!" { # ERROR: Invalid step name
    inline = ["true"]
  }
  build "shell" "env" {
    inline      = ["true"]
    environment = { "1BAD" = "x" } # ERROR: Invalid environment variable name
  }
  build "shell" "empty" {
    inline = [] # ERROR: No inline commands
  }
  build "shell" "negative" {
    inline  = ["true"]
    timeout = "-5m" # ERROR: Invalid timeout
  }

  test "shell" "setup" {
    inline = ["true"]
  }
  test "shell" "setup" { # ERROR: Duplicate step name
    inline = ["true"]
  }
  test "shell" { # ERROR: Missing name for test
    inline = ["true"]
  }
}
