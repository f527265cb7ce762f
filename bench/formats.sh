#!/usr/bin/env bash
# Times Kiln's native format writers and compressors against the reference
# tools on the same raw image, in paired runs (kiln, reference, kiln, ...),
# and prints time and size ratios as markdown table rows for
# docs/benchmarks.md.
#
#   qcow2, qcow2 -c, vmdk monolithicSparse, vmdk streamOptimized,
#   vhd fixed, vhd dynamic, vhdx        vs  qemu-img convert
#   zstd                                vs  zstd -T0 -3
#   xz                                  vs  xz -T0 -6
#
# Both sides are timed durable: `kiln convert` fsyncs its output before the
# rename that publishes it, so qemu-img runs with `-t writeback` (its convert
# default, `unsafe`, never flushes) and the compressors are followed by
# `sync FILE`.
#
# Usage: bench/formats.sh [RAW] [RUNS]
#   RAW defaults to the newest published debian-minimal image (run `make demo`).
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${2:-3}
out=bench/out/formats; rm -rf "$out"; mkdir -p "$out"
raw=${1:-}
if [ -z "$raw" ]; then
  z=$(ls -t images/debian-minimal/*/*/debian-minimal.raw.zst 2>/dev/null | head -1)
  [ -n "$z" ] || { echo "no image: pass a raw file or run 'make demo' first" >&2; exit 2; }
  raw=$out/input.raw
  zstd -q -d -o "$raw" "$z"
fi
make -s build
kiln=./bin/kiln
now() { date +%s.%N; }
median() { sort -n | awk '{a[NR]=$1} END{print (NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2}'; }
timeit() { local t; t=$(now); "$@" >/dev/null 2>&1 || { echo "failed: $*" >&2; exit 1; }; echo "$(now) - $t" | bc; }
size() { stat -c %s "$1"; }

data=$(du -B1 "$raw" | cut -f1)
echo "input: $raw, virtual $(($(size "$raw")/1048576)) MiB, data $((data/1048576)) MiB, $(nproc) cores, $runs paired runs"
echo
echo "| output | kiln | reference | time kiln/ref | size kiln | size ref | size kiln/ref |"
echo "|---|---|---|---|---|---|---|"
row() { # name kiln-file ref-file kiln-times ref-times
  local k r ks rs
  k=$(median <"$4"); r=$(median <"$5"); ks=$(size "$2"); rs=$(size "$3")
  printf "| %s | %.2f s | %.2f s | %.2f | %d MB | %d MB | %.2f |\n" "$1" "$k" "$r" "$(echo "$k/$r" | bc -l)" $((ks/1000000)) $((rs/1000000)) "$(echo "$ks/$rs" | bc -l)"
}
bench_format() { # name kiln-args qemu-img-args ext
  local name=$1 ext=$4 kt=$out/$1.kt rt=$out/$1.rt
  : >"$kt"; : >"$rt"
  for i in $(seq "$runs"); do
    rm -f "$out/k.$ext" "$out/r.$ext"
    timeit $kiln convert "$raw" $2 -o "$out/k.$ext" >>"$kt"
    timeit qemu-img convert -t writeback -f raw $3 "$raw" "$out/r.$ext" >>"$rt"
  done
  row "$name" "$out/k.$ext" "$out/r.$ext" "$kt" "$rt"
}
bench_format "qcow2"                 "--to qcow2"                            "-O qcow2"                                    qcow2
bench_format "qcow2 compressed"      "--to qcow2 --compressed"               "-c -O qcow2"                                 qcow2
bench_format "vmdk monolithicSparse" "--to vmdk --subformat monolithicSparse" "-O vmdk"                                    vmdk
bench_format "vmdk streamOptimized"  "--to vmdk --subformat streamOptimized"  "-O vmdk -o subformat=streamOptimized"        vmdk
bench_format "vhd fixed"             "--to vhd --subformat fixed"             "-O vpc -o subformat=fixed,force_size=on"     vhd
bench_format "vhd dynamic"           "--to vhd --subformat dynamic"           "-O vpc -o subformat=dynamic"                 vhd
bench_format "vhdx"                  "--to vhdx"                              "-O vhdx"                                     vhdx

bench_compress() { # name kiln-compress ref-command ext
  local kt=$out/$1.kt rt=$out/$1.rt
  : >"$kt"; : >"$rt"
  for i in $(seq "$runs"); do
    rm -f "$out/k.raw$4" "$out/r.raw$4"
    timeit $kiln convert "$raw" --to raw --compress "$2" -o "$out/k.raw$4" >>"$kt"
    timeit sh -c "$3 <'$raw' >'$out/r.raw$4' && sync '$out/r.raw$4'" >>"$rt"
  done
  row "$1" "$out/k.raw$4" "$out/r.raw$4" "$kt" "$rt"
}
bench_compress "raw.zst (vs zstd -T0 -3)" zstd "zstd -q -T0 -3 -c" .zst
bench_compress "raw.xz (vs xz -T0 -6)"   xz   "xz -T0 -6 -c"      .xz
