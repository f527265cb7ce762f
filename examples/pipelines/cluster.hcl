# Pipelines for a Kubernetes cluster (see docs/scaling.md): print them as
# CronJobs with
#
#   kiln schedule --export kubernetes --context examples \
#     --image registry.example:5000/kiln-builder:0.3.0 examples/pipelines/cluster.hcl
#
# --context is the directory the builder image holds at /recipes; each
# pod pulls the newest build of the version from the registry, builds if
# the inputs changed, and pushes the result there.

# Nightly, on a node with /dev/kvm (the KVM device plugin's resource).
pipeline "nightly-minimal" {
  recipe    = "../debian-minimal.hcl"
  schedule  = "0 3 * * *"
  time_zone = "Europe/Berlin"
  registry  = "oci://registry.example:5000/images/debian-minimal"
  kvm       = true
}

# Weekly, under TCG on any node, with the KubeVirt containerDisk too.
pipeline "weekly-bookworm" {
  recipe        = "../debian-minimal.hcl"
  schedule      = "@weekly"
  when          = "always"
  variables     = { suite = "bookworm" }
  registry      = "oci://registry.example:5000/images/debian-minimal-bookworm"
  containerdisk = true
}
