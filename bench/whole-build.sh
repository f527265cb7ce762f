#!/usr/bin/env bash
# A whole `kiln build` of the minimal example (cached base), this checkout's
# kiln against another commit's in paired runs (this, other, this, ...), and
# prints a markdown row for docs/benchmarks.md with each side's median and
# its test and outputs stages (from the manifests).
#
# Usage: bench/whole-build.sh REF [RUNS]   (REF: a commit, e.g. HEAD~3; default 3 runs)
# Environment: KILN_CACHE (the base cache, default /var/cache/kiln; the first
# build of a fresh cache bootstraps the base, so one unpaired build runs first).
set -euo pipefail
cd "$(dirname "$0")/.."
ref=${1:?usage: bench/whole-build.sh REF [RUNS]}
runs=${2:-3}
out=bench/out/whole-build
rm -rf "$out"; mkdir -p "$out"
need() { for c in "$@"; do command -v "$c" >/dev/null || { echo "whole-build: $c is missing (scripts/install-deps.sh installs it)" >&2; exit 2; }; done; }
need jq bc git go qemu-system-x86_64
now() { date +%s.%N; }
median() { sort -n | awk '{a[NR]=$1} END{print (NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2}'; }

make -s build
cp bin/kiln "$out/kiln-this"
src=$(mktemp -d)
trap 'rm -rf "$src"' EXIT
git archive "$ref" | tar -x -C "$src"
(cd "$src" && go build -trimpath -o kiln ./cmd/kiln)
cp "$src/kiln" "$out/kiln-ref"

build() { # side run
  local t0 t1 path
  t0=$(now)
  if ! "$out/kiln-$1" build --json --images "$out/images-$1" examples/debian-minimal.hcl >"$out/$1-$2.json" 2>"$out/$1-$2.err"; then
    echo "whole-build: the $1 build failed:" >&2; cat "$out/$1-$2.err" >&2; exit 1
  fi
  t1=$(now)
  path=$(jq -r .path "$out/$1-$2.json")
  printf "%.1f %s\n" "$(echo "$t1 - $t0" | bc)" "$(jq -r '[.stages[] | select(.stage == "test" or .stage == "outputs") | .seconds * 10 | round / 10 | tostring] | join(" ")' "$path/manifest.json")" >>"$out/$1.times"
}

build this warmup >/dev/null # a fresh cache bootstraps the base here, not in a timed run
: >"$out/this.times"
for i in $(seq "$runs"); do
  build this "$i"
  build ref "$i"
done
col() { awk -v c="$2" '{print $c}' "$out/$1.times" | median; }
this=$(col this 1) other=$(col ref 1)
echo "runs (wall, test stage, outputs stage), this: $(paste -sd',' "$out/this.times"); $ref: $(paste -sd',' "$out/ref.times")"
echo
echo "| date | this checkout (median) | $ref (median) | this / $ref | test stage, this / $ref | outputs stage, this / $ref |"
echo "|---|---|---|---|---|---|"
printf "| %s | %.1f s | %.1f s | **%.2f** | %.1f / %.1f s | %.1f / %.1f s |\n" "$(date +%F)" "$this" "$other" \
  "$(echo "$this / $other" | bc -l)" "$(col this 2)" "$(col ref 2)" "$(col this 3)" "$(col ref 3)"
