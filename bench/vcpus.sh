#!/usr/bin/env bash
# How the test VM's vCPU count under TCG plays with the host's cores: the
# minimal example's time to multi-user.target (the probe disk of
# bench/loop-boot.sh, made first if it is missing) booted
#
#   alone with one vCPU, alone with two,
#   two at once with one vCPU each, with two each, and with two and one,
#
# each RUNS times (default 1), and prints markdown rows for
# docs/benchmarks.md (medians). This is what qemu.DefaultCPUs is decided on;
# run it on an otherwise idle machine.
#
# Usage: bench/vcpus.sh [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-1}
disk=bench/out/loop-boot/kiln.raw.probe
[ -e "$disk" ] || bash bench/loop-boot.sh 1 >/dev/null
out=bench/out/vcpus
rm -rf "$out"; mkdir -p "$out"
# shellcheck source=bench/lib/probe-boot.sh
source bench/lib/probe-boot.sh
median() { sort -n | awk '{a[NR]=$1} END{print (NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2}'; }

# at_once NAME VCPUS NAME VCPUS: two boots started together
at_once() {
	probe_boot "$1" "$disk" "$2" >"$out/$1.t" &
	local a=$!
	probe_boot "$3" "$disk" "$4" >"$out/$3.t" &
	local b=$!
	wait "$a" "$b"
	cat "$out/$1.t" >>"$out/$1.times"
	cat "$out/$3.t" >>"$out/$3.times"
}
for i in $(seq "$runs"); do
	probe_boot alone-1 "$disk" 1 >>"$out/alone-1.times"
	probe_boot alone-2 "$disk" 2 >>"$out/alone-2.times"
	at_once pair11-a 1 pair11-b 1
	at_once pair22-a 2 pair22-b 2
	at_once pair21-a 2 pair21-b 1
	echo "run $i done" >&2
done
m() { printf "%.1f s" "$(median <"$out/$1.times")"; }
echo "| VMs at once | vCPUs each | time to multi-user (median of $runs, $(nproc) host cores, $accel) |"
echo "|---|---|---|"
echo "| one | one | $(m alone-1) |"
echo "| one | two | $(m alone-2) |"
echo "| two | one | $(m pair11-a) and $(m pair11-b) |"
echo "| two | two | $(m pair22-a) and $(m pair22-b) |"
echo "| two | two and one | $(m pair21-a) and $(m pair21-b) |"
