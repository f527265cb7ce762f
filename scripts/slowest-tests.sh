#!/usr/bin/env bash
# Prints the N slowest tests (default 10) of a `go test -v` log: the top
# level tests' own "--- PASS/FAIL: Name (Ns)" lines, slowest first.
set -euo pipefail
log=$1
n=${2:-10}
echo "slowest $n tests:"
grep -E '^--- (PASS|FAIL|SKIP): [^/ ]+ \([0-9.]+s\)' "$log" |
	sed -E 's/^--- (PASS|FAIL|SKIP): ([^ ]+) \(([0-9.]+)s\)/\3 \2 \1/' |
	sort -rn | head -n "$n" |
	awk '{printf "  %8.1fs  %s (%s)\n", $1, $2, $3}'
