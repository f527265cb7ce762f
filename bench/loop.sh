#!/usr/bin/env bash
# The edit-build-test loop's benchmarks (issue 15), each against its
# reference in the same run; rows for docs/benchmarks.md:
#
#   bench/loop-boot.sh     time to multi-user.target of the minimal example
#                          against a hand-made debootstrap + systemd-boot image
#   bench/loop-rebuild.sh  rebuilds after editing a build step against a cold
#                          build (when present)
#
# Usage: bench/loop.sh [RUNS]   (paired runs per row, default 3)
set -euo pipefail
cd "$(dirname "$0")/.."
bash bench/loop-boot.sh "$@"
if [ -f bench/loop-rebuild.sh ]; then
	bash bench/loop-rebuild.sh "$@"
fi
