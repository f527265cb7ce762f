#!/usr/bin/env bash
# The edit-build-test loop with the layer cache, in one run, on one machine:
#
# (a) a web-server recipe (step 1 installs nginx from the archive, step 2
#     writes its site config, step 3 writes the page from var.page):
#       cold     a build with an empty cache directory (bootstrap, every step)
#       rebuild  the same recipe with only step 3 edited (-var page=...)
#       no-layer the same again with --refresh-steps: the base is cached, but
#                every step runs (what every rebuild cost before the layer cache)
#     and prints rebuild/cold (goal: under 0.3) and rebuild/no-layer.
# (b) a recipe whose first of three steps takes 20 s (sleep 20): a build,
#     then a rebuild with only the last step edited; the rebuild's manifest
#     must say the first step came from the cache (cached: true).
#
# Every build boots its image once (UEFI) and runs its test, as kiln build
# always does. Output: markdown rows for docs/benchmarks.md.
#
# Usage: bench/loop-rebuild.sh    (bench/loop.sh runs it after loop-boot.sh;
#        each build runs once)
# Environment: SUITE (default trixie), as for bench/loop-boot.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
suite=${SUITE:-trixie}
out=bench/out/loop-rebuild
rm -rf "$out"; mkdir -p "$out"
cache=$out/cache images=$out/images
need() { for c in "$@"; do command -v "$c" >/dev/null || { echo "loop-rebuild: $c is missing (scripts/install-deps.sh installs it)" >&2; exit 2; }; done; }
need jq bc qemu-system-x86_64
make -s build
kiln=./bin/kiln
now() { date +%s.%N; }

# recipe NAME VAR BODY: a UEFI image NAME on $suite, with a string
# variable VAR and BODY (its steps and test) in the image block.
recipe() {
  cat <<EOF
variable "$2" { type = string }
image "$1" {
  version = "1.0.0"
  base "debian" { suite = "$suite" }
  boot { firmware = "uefi" }
  disk { size = "2GiB" }
$3
}
EOF
}
recipe loop-web page '
  build "packages" "nginx" { install = ["nginx"] }
  build "file" "site" {
    destination = "/etc/nginx/sites-available/default"
    content     = "server {\n  listen 80 default_server;\n  root /var/www/html;\n}\n"
  }
  build "file" "page" {
    destination = "/var/www/html/index.html"
    content     = "${var.page}\n"
  }
  test "shell" "page" { inline = ["/usr/sbin/nginx -t", "grep -qx ${var.page} /var/www/html/index.html"] }' >"$out/web.hcl"
recipe loop-slow last '
  build "shell" "slow" { inline = ["sleep 20", "echo slow > /etc/kiln-slow"] }
  build "shell" "two" { inline = ["echo two > /etc/kiln-two"] }
  build "shell" "last" { inline = ["echo ${var.last} > /etc/kiln-last"] }
  test "shell" "files" { inline = ["grep -qx slow /etc/kiln-slow", "grep -qx ${var.last} /etc/kiln-last"] }' >"$out/slow.hcl"

# build NAME RECIPE ARGS...: runs kiln build, records the wall time in
# $out/NAME.time and the manifest's path in $out/NAME.path.
build() {
  local name=$1 recipe=$2; shift 2
  local t0 t1
  t0=$(now)
  if ! $kiln build --json --cache "$cache" --images "$images" "$@" "$recipe" >"$out/$name.json" 2>"$out/$name.err"; then
    echo "build $name failed:" >&2; cat "$out/$name.err" "$out/$name.json" >&2; exit 1
  fi
  t1=$(now)
  echo "$t1 - $t0" | bc >"$out/$name.time"
  jq -r .path "$out/$name.json" >"$out/$name.path"
}
secs() { printf "%.1f" "$(cat "$out/$1.time")"; }
ratio() { printf "%.2f" "$(echo "$(cat "$out/$1.time") / $(cat "$out/$2.time")" | bc -l)"; }
manifest() { cat "$(cat "$out/$1.path")/manifest.json"; }
# noboot NAME: the build's wall time without its test stage (booting the
# image and running its test: the same work in every build of a recipe).
noboot() { echo "$(cat "$out/$1.time") - $(manifest "$1" | jq '.stages[] | select(.stage == "test") | .seconds')" | bc -l; }
noboot_ratio() { printf "%.2f" "$(echo "$(noboot "$1") / $(noboot "$2")" | bc -l)"; }
stages() { manifest "$1" | jq -r '[.stages[] | "\(.stage) \(.seconds*10|round/10)"] | join(", ")'; }
steps() { manifest "$1" | jq -r '[.build_steps[] | "\(.name): \(if .cached then "cached" else "ran" end) \(.seconds*10|round/10) s"] | join(", ")'; }

build cold     "$out/web.hcl" -var page=one
build rebuild  "$out/web.hcl" -var page=two
build nolayers "$out/web.hcl" -var page=three --refresh-steps
build slow1    "$out/slow.hcl" -var last=one
build slow2    "$out/slow.hcl" -var last=two

first_cached=$(manifest slow2 | jq -r '.build_steps[0].cached')
[ "$first_cached" = true ] || { echo "FAIL: the rebuild ran step \"slow\" again: $(steps slow2)" >&2; exit 1; }
for b in rebuild slow2; do
  n=$(manifest $b | jq '[.build_steps[] | select(.cached)] | length')
  [ "$n" = 2 ] || { echo "FAIL: $b restored $n steps, expected 2: $(steps $b)" >&2; exit 1; }
done

echo "suite $suite, $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg) at the end"
echo
echo "(a) | date | cold build (empty cache) | rebuild, step 3 of 3 edited | rebuild / cold | build with --refresh-steps (base cached) | rebuild / that |"
echo "|---|---|---|---|---|---|---|"
echo "| $(date +%F) | $(secs cold) s | $(secs rebuild) s | **$(ratio rebuild cold)** | $(secs nolayers) s | $(ratio rebuild nolayers) |"
printf "| without the test stage | %.1f s | %.1f s | **%s** | %.1f s | %s |\n" "$(noboot cold)" "$(noboot rebuild)" "$(noboot_ratio rebuild cold)" "$(noboot nolayers)" "$(noboot_ratio rebuild nolayers)"
echo
echo "(b) | date | first build (step \"slow\" runs) | rebuild, last step edited | rebuild / first | step \"slow\" in the rebuild's manifest |"
echo "|---|---|---|---|---|---|"
echo "| $(date +%F) | $(secs slow1) s | $(secs slow2) s | $(ratio slow2 slow1) | $(manifest slow2 | jq -c '.build_steps[0] | {name, cached, seconds: (.seconds*100|round/100)}') |"
printf "| without the test stage | %.1f s | %.1f s | %s | |\n" "$(noboot slow1)" "$(noboot slow2)" "$(noboot_ratio slow2 slow1)"
echo
for b in cold rebuild nolayers slow1 slow2; do
  echo "$b: stages: $(stages $b)"
  echo "$b: steps: $(steps $b)"
done
