#!/usr/bin/env bash
# A hybrid image's two test boots at once against the same boots in turn:
# examples/boot-matrix.hcl built as a hybrid GPT image (its own base cache
# under bench/out/hybrid-boots unless KILN_CACHE is set), then, RUNS times
# (default 3), alternating which goes first:
#
#   in turn  kiln test --firmware uefi ARTIFACT, then --firmware bios: the
#            two boots one after another, as every build and kiln test ran
#            them before boots ran at once
#   at once  kiln test ARTIFACT: both boots, started together when the host
#            has a core for each vCPU of both (boottest.Concurrent)
#
# Each is the wall time of the kiln test commands (copies, injection, the
# boots and their checks). Prints markdown rows for docs/benchmarks.md
# (medians, and at once / in turn). Run it on an otherwise idle machine.
#
# Usage: bench/hybrid-boots.sh [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}
out=bench/out/hybrid-boots
kiln=./bin/kiln
[ -x "$kiln" ] || { echo "hybrid-boots: build kiln first (make build)" >&2; exit 2; }
mkdir -p "$out"
cache=${KILN_CACHE:-$out/cache}
rm -rf "$out/images" "$out"/*.times
"$kiln" build --json --images "$out/images" --cache "$cache" -var firmware=hybrid examples/boot-matrix.hcl >"$out/build.json"
artifact=$(sed -n 's/.*"path": *"\([^"]*\)".*/\1/p' "$out/build.json" | head -1)
[ -d "$artifact" ] || { echo "hybrid-boots: the build published no artifact (see $out/build.json)" >&2; exit 1; }

median() { sort -n | awk '{a[NR]=$1} END{print (NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2}'; }
now() { date +%s.%N; }
in_turn() {
	local t0
	t0=$(now)
	"$kiln" test --firmware uefi "$artifact" >/dev/null 2>"$out/in-turn-uefi.err" || { cat "$out/in-turn-uefi.err" >&2; exit 1; }
	"$kiln" test --firmware bios "$artifact" >/dev/null 2>"$out/in-turn-bios.err" || { cat "$out/in-turn-bios.err" >&2; exit 1; }
	echo "$(now) - $t0" | bc >>"$out/in-turn.times"
}
at_once() {
	local t0
	t0=$(now)
	"$kiln" test "$artifact" >/dev/null 2>"$out/at-once.err" || { cat "$out/at-once.err" >&2; exit 1; }
	echo "$(now) - $t0" | bc >>"$out/at-once.times"
}
for i in $(seq "$runs"); do
	if [ $((i % 2)) = 1 ]; then in_turn; at_once; else at_once; in_turn; fi
	echo "run $i done" >&2
done
m() { median <"$out/$1.times"; }
runs_of() { xargs printf '%.1f, ' <"$out/$1.times" | sed 's/, $//'; }
echo "| date | hybrid image, $(nproc) host cores | in turn (median of $runs) | at once (median of $runs) | at once / in turn |"
echo "|---|---|---|---|---|"
echo "| $(date +%F) | uefi and bios boots, kiln test | $(printf %.1f "$(m in-turn)") s ($(runs_of in-turn)) | $(printf %.1f "$(m at-once)") s ($(runs_of at-once)) | $(printf %.2f "$(echo "$(m at-once) / $(m in-turn)" | bc -l)") |"
