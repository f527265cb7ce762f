#!/usr/bin/env bash
# Runs every fuzz target for FUZZTIME (default 10m) with FUZZPARALLEL
# workers (default 1: the rate is then per core), one after another, and
# prints a table of each target's executions, rate and new corpus entries;
# the table also goes to bin/fuzz-long.md. Crashers are written to the
# target's testdata/fuzz/ by go test, and the run fails.
#
#   FUZZTIME=30m bash scripts/fuzz-long.sh            # every target
#   FUZZTIME=2m bash scripts/fuzz-long.sh vhd ova     # targets whose package or name matches
#   FUZZTIME=100000x FUZZTIME_RECIPES=1000000x FUZZPARALLEL=2 bash scripts/fuzz-long.sh
#
# FUZZTIME is a duration or a count of inputs (go test's "Nx");
# FUZZTIME_RECIPES, when set, replaces it for the recipe parser's targets.
#
# With a duration, Go's fuzzing coordinator (up to Go 1.26) can end a
# target with a bare "context deadline exceeded" as the time runs out, a
# race in the coordinator (golang/go#75804), not an input of ours: no
# crasher is written. Such a target is reported as "deadline race, no
# crasher" and does not fail the run; a target fails when it wrote a new
# input to its testdata/fuzz/ directory, or exited nonzero for any other
# reason.
#
# Heavy: on the shared development machine run it through the e2e slot.
set -uo pipefail
cd "$(dirname "$0")/.."
FUZZTIME=${FUZZTIME:-10m}
FUZZTIME_RECIPES=${FUZZTIME_RECIPES:-$FUZZTIME}
FUZZPARALLEL=${FUZZPARALLEL:-1}
FUZZMINIMIZE=${FUZZMINIMIZE:-10s}
GO=${GO:-go}

targets=(
  ./recipes:FuzzParse
  ./recipes:FuzzParsePipelines
  ./recipes:FuzzFormat
  ./internal/units:FuzzParseSize
  ./internal/cron:FuzzParse
  ./internal/deflate:FuzzDeflate
  ./internal/fat32:FuzzReader
  ./internal/authenticode:FuzzSigners
  ./formats/qcow2:FuzzOpenQCOW2
  ./formats/vmdk:FuzzOpenVMDK
  ./formats/vmdk:FuzzOpenVMDKFile
  ./formats/vhd:FuzzOpenVHD
  ./formats/vhdx:FuzzOpenVHDX
  ./formats/ova:FuzzCheckOVA
  ./formats:FuzzDecompress
  ./disk:FuzzInspect
  ./base:FuzzDebugfsListing
)

mkdir -p bin
report=bin/fuzz-long.md
{
  echo "Fuzzing, $FUZZTIME per target ($FUZZTIME_RECIPES for recipes), $FUZZPARALLEL worker(s), $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, $(go version | cut -d' ' -f3)"
  echo
  echo "| package | target | seconds | inputs | inputs/s | per worker | new corpus | result |"
  echo "|---|---|---:|---:|---:|---:|---:|---|"
} > "$report"
status=0
total=0
for t in "${targets[@]}"; do
  pkg=${t%%:*} name=${t#*:}
  if [ $# -gt 0 ]; then
    want=0
    for f in "$@"; do [[ $pkg == *"$f"* || $name == *"$f"* ]] && want=1; done
    [ $want = 1 ] || continue
  fi
  ft=$FUZZTIME
  [ "$pkg" = ./recipes ] && ft=$FUZZTIME_RECIPES
  log=$(mktemp)
  corpus=$pkg/testdata/fuzz/$name
  before=$(ls "$corpus" 2>/dev/null | sort)
  echo "== $pkg $name ($ft)"
  start=$(date +%s)
  $GO test -run '^$' -fuzz "^${name}\$" -fuzztime "$ft" -fuzzminimizetime "$FUZZMINIMIZE" -parallel "$FUZZPARALLEL" "$pkg" >"$log" 2>&1
  rc=$?
  last=$(grep -E '^fuzz: elapsed: .*execs: [0-9]+' "$log" | tail -1)
  # The fuzzing time, from go test's last line ("elapsed: 1h2m3s"), not
  # the compile time around it.
  el=$(sed -E 's/^fuzz: elapsed: ([0-9hms]+),.*/\1/' <<<"$last")
  secs=0
  [[ $el =~ ([0-9]+)h ]] && secs=$(( secs + ${BASH_REMATCH[1]} * 3600 ))
  [[ $el =~ ([0-9]+)m ]] && secs=$(( secs + ${BASH_REMATCH[1]} * 60 ))
  [[ $el =~ ([0-9]+)s ]] && secs=$(( secs + ${BASH_REMATCH[1]} ))
  [ -n "$last" ] || secs=$(( $(date +%s) - start ))
  execs=$(sed -E 's/.*execs: ([0-9]+).*/\1/' <<<"$last")
  execs=${execs:-0}
  new=$(sed -nE 's/.*new interesting: ([0-9]+).*/\1/p' <<<"$last")
  rate=$(( secs > 0 ? execs / secs : 0 ))
  result=ok
  if [ $rc -ne 0 ]; then
    crashers=$(comm -13 <(echo "$before") <(ls "$corpus" 2>/dev/null | sort))
    if [ -z "$crashers" ] && grep -qx '    context deadline exceeded' "$log"; then
      result="deadline race, no crasher"
      echo "$pkg $name: go test exited $rc with \"context deadline exceeded\" as the fuzz time ran out and wrote no input: golang/go#75804, not a failure of the target"
    else
      result=FAIL
      status=1
      tail -30 "$log"
      [ -z "$crashers" ] || echo "new input(s) in $corpus: $crashers (rerun one: go test -run '$name/$(head -1 <<<"$crashers")' $pkg)"
    fi
  fi
  total=$(( total + execs ))
  printf '| %s | %s | %d | %d | %d | %d | %s | %s |\n' "$pkg" "$name" "$secs" "$execs" "$rate" $(( rate / FUZZPARALLEL )) "${new:-0}" "$result" | tee -a "$report"
  rm -f "$log"
done
echo | tee -a "$report"
echo "Total: $total inputs." | tee -a "$report"
exit $status
