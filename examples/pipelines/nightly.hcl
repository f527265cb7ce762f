# A pipelines file for `kiln schedule` (see docs/scheduling.md). Recipe and
# var_files paths are relative to this file.

# Every night at 03:00 Berlin time, rebuild debian-minimal if anything it is
# built from changed: the recipe, its scripts, its variables, the Debian
# archive (its Release file) or Kiln itself. Otherwise the run logs
# "up to date" and takes a second.
pipeline "nightly-minimal" {
  recipe    = "../debian-minimal.hcl"
  schedule  = "0 3 * * *"
  when      = "inputs-changed"
  time_zone = "Europe/Berlin"
}

# Every Sunday at 04:30 (the host's time zone), build the trixie variant
# whether or not anything changed, and stop trying after five failures in a
# row until the service is restarted.
pipeline "weekly-trixie" {
  recipe       = "../debian-minimal.hcl"
  schedule     = "30 4 * * sun"
  when         = "always"
  max_failures = 5
  variables    = { suite = "trixie" }
}
