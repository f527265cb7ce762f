#!/usr/bin/env bash
# Time to multi-user.target of Kiln's minimal example against a reference
# image made by hand, booted under the same QEMU settings in paired runs
# (kiln, reference, kiln, reference, ...), and prints the ratio as a markdown
# table row for docs/benchmarks.md.
#
# The reference is what a person makes without Kiln: mmdebstrap (minbase,
# the same suite, kernel, systemd, udev, dbus, initramfs-tools and e2fsprogs
# as Kiln's base) plus systemd-boot on an ESP written with sgdisk,
# mkfs.vfat and mcopy, the root written with mke2fs -d; Debian's defaults
# otherwise (initramfs MODULES=most, every unit the packages enable, the ESP
# mounted at boot). Both disks are 2 GiB GPT with a 256 MiB ESP at /boot/efi
# (Kiln's mounted on first use, its default), and both boot as a first boot
# (machine-id "uninitialized").
#
# The measurement is the same for both and needs no Kiln code: a copy of each
# disk gets a probe unit (written with debugfs) ordered after
# multi-user.target that prints a marker on the console and powers the guest
# off at once (sysrq o), so QEMU exits the moment the target is reached; the
# time is QEMU's wall time from start to that exit. Each run boots a fresh
# copy.
#
# Usage: bench/loop-boot.sh [RUNS]    (default 3 paired runs)
# Environment: VCPUS (default 1: both images get the same), SUITE (default:
# the example's, trixie), FRESH=1 rebuilds the
# reference tree (cached in bench/out/loop-boot/), KILN_CACHE (the base cache
# kiln build uses, default /var/cache/kiln).
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}
suite=${SUITE:-trixie}
out=bench/out/loop-boot
mkdir -p "$out"
need() { for c in "$@"; do command -v "$c" >/dev/null || { echo "loop-boot: $c is missing (scripts/install-deps.sh installs it)" >&2; exit 2; }; done; }
need mmdebstrap sgdisk mkfs.vfat mmd mcopy mke2fs debugfs qemu-system-x86_64 zstd
median() { sort -n | awk '{a[NR]=$1} END{print (NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2}'; }

# --- QEMU: the options Kiln's test boots use (internal/qemu, boottest), with
# VCPUS vCPUs for both images.
vcpus=${VCPUS:-1}
# shellcheck source=bench/lib/probe-boot.sh
source bench/lib/probe-boot.sh

# --- The Kiln image: the minimal example, built with the base cache.
make -s build
rm -rf "$out/images"
./bin/kiln build --images "$out/images" --cache "${KILN_CACHE:-/var/cache/kiln}" -var "suite=$suite" examples/debian-minimal.hcl >/dev/null
kiln_dir=$(ls -d "$out"/images/debian-minimal/*/* | tail -1)
zstd -q -f -d -o "$out/kiln.raw" "$kiln_dir/debian-minimal.raw.zst"

# --- The reference image, by hand.
mirror=$(apt-get indextargets --format '$(REPO_URI) $(RELEASE)' | awk '$2 !~ /-/ {print $1; exit}')
tree=$out/reference-$suite
if [ "${FRESH:-0}" = 1 ] || [ ! -e "$tree.done" ]; then
	rm -rf "$tree" "$tree.done"
	mmdebstrap --quiet --mode=root --variant=minbase --format=directory \
		--include=linux-image-cloud-amd64,systemd-sysv,udev,dbus,initramfs-tools,e2fsprogs,systemd-boot-efi \
		"$suite" "$tree" "$mirror"
	touch "$tree.done"
fi
ref=$out/reference.raw
rm -f "$ref" "$out/esp.img"
truncate -s 2G "$ref"
sgdisk -n 1:2048:+256M -t 1:ef00 -c 1:esp -n 2:0:0 -t 2:8304 -c 2:root "$ref" >/dev/null
esp_start=$((2048 * 512))
root_start=$(sgdisk -i 2 "$ref" | awk '/First sector/ {print $3 * 512}')
root_sectors=$(sgdisk -i 2 "$ref" | awk '/Partition size/ {print $3}')
root_uuid=$(cat /proc/sys/kernel/random/uuid)
esp_id=$(printf '%08X' $((RANDOM * 65536 + RANDOM)))
kver=$(ls "$tree"/lib/modules | sort -V | tail -1)
printf 'UUID=%s / ext4 errors=remount-ro 0 1\nUUID=%s-%s /boot/efi vfat umask=0077 0 2\n' \
	"$root_uuid" "${esp_id:0:4}" "${esp_id:4:4}" >"$tree/etc/fstab"
mkdir -p "$tree/boot/efi"
echo uninitialized >"$tree/etc/machine-id"
mkfs.vfat -F 32 -i "$esp_id" -C "$out/esp.img" $((256 * 1024)) >/dev/null
mmd -i "$out/esp.img" ::/EFI ::/EFI/BOOT ::/loader ::/loader/entries
mcopy -i "$out/esp.img" "$tree/usr/lib/systemd/boot/efi/systemd-bootx64.efi" ::/EFI/BOOT/BOOTX64.EFI
mcopy -i "$out/esp.img" "$tree/boot/vmlinuz-$kver" ::/vmlinuz
mcopy -i "$out/esp.img" "$tree/boot/initrd.img-$kver" ::/initrd.img
printf 'default debian.conf\n' >"$out/loader.conf"
printf 'title Debian\nlinux /vmlinuz\ninitrd /initrd.img\noptions root=UUID=%s ro console=ttyS0,115200\n' "$root_uuid" >"$out/debian.conf"
mcopy -i "$out/esp.img" "$out/loader.conf" ::/loader/loader.conf
mcopy -i "$out/esp.img" "$out/debian.conf" ::/loader/entries/debian.conf
dd if="$out/esp.img" of="$ref" bs=1M seek=1 conv=notrunc,sparse status=none
mke2fs -q -t ext4 -F -U "$root_uuid" -d "$tree" -E offset="$root_start" "$ref" $((root_sectors / 2))k

# --- The probe, written the same way into a copy of each disk.
probe_unit=$out/kiln-bench-multi-user.service
cat >"$probe_unit" <<'EOF'
[Unit]
Description=bench: multi-user.target reached, exit QEMU
DefaultDependencies=no
After=multi-user.target

[Service]
Type=oneshot
ExecStart=/bin/sh -c 'echo KILN-BENCH-MULTI-USER >/dev/ttyS0; echo o >/proc/sysrq-trigger'

[Install]
WantedBy=multi-user.target
EOF
root_offset() { # the byte offset of the partition labelled root
	sgdisk -p "$1" | awk '$7 == "root" {print $2 * 512}'
}
probe() { # disk -> disk.probe
	cp --sparse=always "$1" "$1.probe"
	debugfs -w -f - "$1.probe?offset=$(root_offset "$1")" >/dev/null 2>&1 <<EOF
write $probe_unit /etc/systemd/system/kiln-bench-multi-user.service
mkdir /etc/systemd/system/multi-user.target.wants
symlink /etc/systemd/system/multi-user.target.wants/kiln-bench-multi-user.service /etc/systemd/system/kiln-bench-multi-user.service
EOF
	debugfs -R "stat /etc/systemd/system/kiln-bench-multi-user.service" "$1.probe?offset=$(root_offset "$1")" >/dev/null 2>&1 ||
		{ echo "loop-boot: could not write the probe into $1" >&2; exit 1; }
}
probe "$out/kiln.raw"
probe "$ref"

: >"$out/kiln.times"
: >"$out/ref.times"
for i in $(seq "$runs"); do
	probe_boot kiln "$out/kiln.raw.probe" "$vcpus" >>"$out/kiln.times"
	probe_boot reference "$ref.probe" "$vcpus" >>"$out/ref.times"
	echo "run $i: kiln $(tail -1 "$out/kiln.times") s, reference $(tail -1 "$out/ref.times") s" >&2
done
k=$(median <"$out/kiln.times")
r=$(median <"$out/ref.times")
echo "| $(date +%F) | $suite, UEFI, $accel, $vcpus vCPU(s), $runs paired runs | $(printf %.1f "$k") s | $(printf %.1f "$r") s | **$(printf %.2f "$(echo "$k/$r" | bc -l)")** |"
