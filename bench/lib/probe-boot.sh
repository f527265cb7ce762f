# Sourced by bench scripts: boots a disk that carries the multi-user probe
# (see bench/loop-boot.sh) under the QEMU options of Kiln's test boots and
# prints QEMU's wall time from start to the probe's power-off.
#
#   probe_boot NAME DISK VCPUS [LEVEL]   -> seconds (the console in $out/serial-NAME.log)
#
# LEVEL is the TCG CPU (KILN_TCG_CPU's values, default x86-64-v2-aes); under
# KVM the guest gets the host's CPU, as in Kiln's test boots.
#
# Needs $out (a directory). Several probe_boot may run at once under
# different NAMEs: each boots its own copy of DISK.

# The UEFI firmware QEMU's descriptors name first for q35 (non-secure).
code=$(grep -l '"uefi"' /usr/share/qemu/firmware/*.json | xargs grep -L -e secure-boot -e enrolled-keys | head -1)
fw_code=$(sed -n 's/.*"filename": *"\([^"]*CODE[^"]*\)".*/\1/p' "$code" | head -1)
fw_vars=$(sed -n 's/.*"filename": *"\([^"]*VARS[^"]*\)".*/\1/p' "$code" | head -1)
[ -r "$fw_code" ] && [ -r "$fw_vars" ] || { echo "probe-boot: no UEFI firmware found through /usr/share/qemu/firmware" >&2; exit 2; }
accel=${KILN_ACCEL:-tcg}
# tcg_cpu LEVEL: the -cpu value of a TCG CPU level, as internal/qemu's tcgCPUs
tcg_cpu() {
	case $1 in
	x86-64-v2-aes) echo qemu64,svm=off,+ssse3,+sse4.1,+sse4.2,+popcnt,+aes,+pclmulqdq ;;
	max) echo max,la57=off,svm=off,vmx=off ;;
	*) echo "probe-boot: unknown TCG CPU level $1 (want x86-64-v2-aes or max)" >&2; exit 2 ;;
	esac
}
# the options of internal/qemu, less -smp (probe_boot's VCPUS) and -cpu
qemu_opts=(-nodefaults -display none -no-reboot -machine "q35,accel=$accel" -m 1024
	-device virtio-rng-pci)

probe_boot() {
	local name=$1 disk=$2 vcpus=$3 level=${4:-x86-64-v2-aes} cpu t0 t1 rc
	cpu=host
	[ "$accel" = kvm ] || cpu=$(tcg_cpu "$level")
	cp --sparse=always "$disk" "$out/run-$name.raw"
	cp "$fw_vars" "$out/vars-$name.fd"
	t0=$(date +%s.%N)
	set +e
	timeout 600 qemu-system-x86_64 "${qemu_opts[@]}" -cpu "$cpu" -smp "$vcpus" \
		-drive "if=pflash,format=raw,unit=0,file=$fw_code,readonly=on" -drive "if=pflash,format=raw,unit=1,file=$out/vars-$name.fd" \
		-drive "file=$out/run-$name.raw,format=raw,if=virtio" \
		-chardev "file,id=ttyS0,path=$out/serial-$name.log" -serial chardev:ttyS0 2>"$out/qemu-$name.err"
	rc=$?
	set -e
	t1=$(date +%s.%N)
	rm -f "$out/run-$name.raw" "$out/vars-$name.fd"
	if [ $rc != 0 ] || ! grep -q KILN-BENCH-MULTI-USER "$out/serial-$name.log"; then
		echo "probe-boot: $name did not reach multi-user.target (QEMU exit status $rc; see $out/serial-$name.log)" >&2
		exit 1
	fi
	echo "$t1 - $t0" | bc
}
