#!/usr/bin/env bash
# The edit-build-test loop's benchmarks (issue 15), each against its
# reference in the same run; rows for docs/benchmarks.md:
#
#   bench/loop-boot.sh     time to multi-user.target of the minimal example
#                          against a hand-made debootstrap + systemd-boot image
#   bench/loop-rebuild.sh  rebuilds after editing a build step against a cold
#                          build, and with the layer cache bypassed (each
#                          build once: every one boots its image)
#
# Usage: bench/loop.sh [RUNS]   (paired boot runs of loop-boot.sh, default 3)
# Environment: SUITE (default trixie) for both.
set -euo pipefail
cd "$(dirname "$0")/.."
bash bench/loop-boot.sh "$@"
bash bench/loop-rebuild.sh
