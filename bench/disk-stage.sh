#!/usr/bin/env bash
# Times Kiln's disk stage against a plain shell pipeline on the same tree:
#   kiln:  go-diskfs GPT + Kiln's FAT32 writer + mke2fs -d -E offset= (bench/diskstage)
#   shell: sgdisk + mkfs.vfat + mmd/mcopy + dd + mke2fs -d -E offset=
# Both write a 2 GiB GPT image with a 256 MiB ESP holding the same EFI binary
# and an ext4 root holding the tree. Runs are paired (A, B, A, B, ...) and the
# medians and their ratio are printed.
#
# Usage: bench/disk-stage.sh [TREE] [RUNS]
#   TREE defaults to the newest base cached by kiln (run `make demo` first).
set -euo pipefail
cd "$(dirname "$0")/.."
cache=${KILN_CACHE:-/var/cache/kiln}
tree=${1:-$(ls -dt "$cache"/bases/*/tree 2>/dev/null | head -1)}
runs=${2:-5}
[ -d "$tree" ] || { echo "no tree: pass one, or run 'make demo' to cache a base" >&2; exit 2; }
out=bench/out; mkdir -p "$out"
efi=$(find "$tree/usr/lib/grub/x86_64-efi" -name 'kernel.img' 2>/dev/null | head -1)
[ -n "$efi" ] || efi=$(ls "$tree"/boot/vmlinuz-* | head -1)   # any binary of realistic size
go build -o "$out/diskstage" ./bench/diskstage

kiln_run() {
  rm -f "$out/kiln.raw"
  "$out/diskstage" -tree "$tree" -o "$out/kiln.raw" -efi "$efi"
}
shell_run() {
  local img=$out/shell.raw esp=$out/esp.img
  rm -f "$img" "$esp"
  truncate -s 2G "$img"
  sgdisk -n1:2048:+256M -t1:EF00 -n2:0:-1M -t2:8304 "$img" >/dev/null
  mkfs.vfat -F32 -C "$esp" $((256*1024)) >/dev/null
  mmd -i "$esp" ::EFI ::EFI/BOOT
  mcopy -i "$esp" "$efi" ::EFI/BOOT/BOOTX64.EFI
  dd if="$esp" of="$img" bs=1M seek=1 conv=notrunc,sparse status=none
  local s=$((257*2048)) e
  e=$(sgdisk -i2 "$img" | awk '/Last sector/{print $3}')
  mke2fs -t ext4 -F -q -b 4096 -E offset=$((s*512)),nodiscard -d "$tree" "$img" $(( (e-s+1)*512/4096 ))
}
now() { date +%s.%N; }
median() { sort -n | awk '{a[NR]=$1} END{print (NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2}'; }

: >"$out/kiln.times"; : >"$out/shell.times"
for i in $(seq "$runs"); do
  sync; t=$(now); kiln_run;  echo "$(now) - $t" | bc >>"$out/kiln.times"
  sync; t=$(now); shell_run; echo "$(now) - $t" | bc >>"$out/shell.times"
done
k=$(median <"$out/kiln.times"); s=$(median <"$out/shell.times")
echo "tree: $tree ($(du -sh --apparent-size "$tree" | cut -f1)), runs: $runs"
printf "kiln disk stage:  %.2f s (median)\nshell pipeline:   %.2f s (median)\nratio kiln/shell: %.2f\n" "$k" "$s" "$(echo "$k / $s" | bc -l)"
echo "allocated: kiln $(du -h "$out/kiln.raw" | cut -f1), shell $(du -h "$out/shell.raw" | cut -f1)"
