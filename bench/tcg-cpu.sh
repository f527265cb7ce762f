#!/usr/bin/env bash
# Which CPU a TCG test VM should get: the minimal example's time to
# multi-user.target (the probe disk of bench/loop-boot.sh, made first if it
# is missing), one vCPU, booted in turn under each TCG CPU level Kiln offers
# (KILN_TCG_CPU): x86-64-v2-aes (the default) and max (every feature TCG
# emulates). Each level RUNS times (default 3), alternating, and prints
# markdown rows for docs/benchmarks.md (medians, and each level's ratio to
# max). Run it on an otherwise idle machine: a TCG boot moves by several
# seconds from run to run.
#
# Usage: bench/tcg-cpu.sh [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}
disk=bench/out/loop-boot/kiln.raw.probe
[ -e "$disk" ] || bash bench/loop-boot.sh 1 >/dev/null
out=bench/out/tcg-cpu
rm -rf "$out"; mkdir -p "$out"
# shellcheck source=bench/lib/probe-boot.sh
source bench/lib/probe-boot.sh
[ "$accel" = tcg ] || { echo "tcg-cpu: KILN_ACCEL=$accel: the TCG CPU level applies under TCG only" >&2; exit 2; }
median() { sort -n | awk '{a[NR]=$1} END{print (NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2}'; }
levels=(x86-64-v2-aes max)
for i in $(seq "$runs"); do
	for l in "${levels[@]}"; do
		probe_boot "$l-$i" "$disk" 1 "$l" >>"$out/$l.times"
	done
	echo "run $i done" >&2
done
m() { median <"$out/$1.times"; }
max=$(m max)
echo "| date | TCG CPU level | time to multi-user (median of $runs, one vCPU) | runs (s) | / max |"
echo "|---|---|---|---|---|"
for l in "${levels[@]}"; do
	echo "| $(date +%F) | \`$l\` | $(printf %.1f "$(m "$l")") s | $(xargs printf '%.1f, ' <"$out/$l.times" | sed 's/, $//') | $(printf %.2f "$(echo "$(m "$l") / $max" | bc -l)") |"
done
