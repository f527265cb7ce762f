#!/usr/bin/env bash
# Rewrites the seed corpora of the image readers' fuzz targets from real
# images made by qemu-img, GNU tar, zstd, xz, sgdisk, sfdisk, mke2fs and
# debugfs (formats/internal/fuzzseeds says which, for which target).
# The seeds are committed; run this after a reader's input format changes.
set -euo pipefail
cd "$(dirname "$0")/.."
go run ./formats/internal/fuzzseeds
