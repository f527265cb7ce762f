package builder

import (
	"os"
	"path/filepath"

	"github.com/kiln-build/kiln/internal/fsroot"
)

// growrootScript grows the partition holding / to the end of its disk and
// then the filesystem, with cloud-guest-utils' growpart and resize2fs. It
// runs at every boot: after a disk is enlarged the next boot uses the space,
// and a disk already full is a no-op. It sits before local-fs.target, so the
// usual case, a partition that already ends within 2 MiB of the disk's end
// (growpart keeps 1 MiB, and GPT's backup table takes 17 KiB), is decided
// with shell builtins alone, from /proc/self/mountinfo and sysfs: every
// program started costs about 0.1 s under emulation, and growpart, a long
// shell script, seconds.
const growrootScript = `#!/bin/sh
# Installed by kiln: grow the root partition and filesystem to fill the disk.
set -eu
# The device of / (the last mount there wins), as major:minor.
dev=
while read -r _ _ mm _ mnt _; do
	[ "$mnt" = / ] && dev=$mm
done </proc/self/mountinfo
sys=/sys/dev/block/$dev
# Not a partition (a whole disk, a device-mapper volume, a network or
# virtual filesystem): nothing to grow.
[ -n "$dev" ] && [ -r "$sys/partition" ] || exit 0
devname() { # uevent file -> its DEVNAME
	while IFS='=' read -r k v; do
		[ "$k" = DEVNAME ] && echo "$v" && return
	done <"$1"
}
read -r part <"$sys/partition"
read -r start <"$sys/start"
read -r size <"$sys/size"
read -r disksize <"$sys/../size"
# Sizes in sysfs are in 512-byte sectors.
[ $((disksize - start - size)) -ge 4096 ] || exit 0
src=/dev/$(devname "$sys/uevent")
disk=/dev/$(devname "$sys/../uevent")
if out=$(growpart "$disk" "$part" 2>&1); then
	echo "$out"
	resize2fs "$src"
else
	case "$out" in
	NOCHANGE*) exit 0 ;;
	*) echo "$out" >&2; exit 1 ;;
	esac
fi
`

const growrootUnit = `[Unit]
Description=Grow the root partition and filesystem to fill the disk (kiln)
DefaultDependencies=no
After=systemd-remount-fs.service
Before=local-fs.target shutdown.target
Conflicts=shutdown.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/lib/kiln/growroot

[Install]
WantedBy=local-fs.target
`

// installGrowroot adds the first-boot growth service to the tree.
func installGrowroot(tree string) error {
	if err := fsroot.WriteFile(tree, "/usr/lib/kiln/growroot", []byte(growrootScript), 0o755); err != nil {
		return err
	}
	return installUnit(tree, "kiln-growroot.service", growrootUnit, "local-fs.target")
}

// installUnit writes a systemd unit into the tree and enables it for
// target, as systemctl enable would: a link in target's .wants directory.
func installUnit(tree, name, unit, target string) error {
	path := "/etc/systemd/system/" + name
	if err := fsroot.WriteFile(tree, path, []byte(unit), 0o644); err != nil {
		return err
	}
	dir, err := fsroot.MkdirAll(tree, "/etc/systemd/system/"+target+".wants", 0o755)
	if err != nil {
		return err
	}
	link := filepath.Join(dir, name)
	_ = os.Remove(link)
	return os.Symlink(path, link)
}
