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
// from sysfs alone: growpart, a long shell script, costs seconds under
// emulation.
const growrootScript = `#!/bin/sh
# Installed by kiln: grow the root partition and filesystem to fill the disk.
set -eu
src=$(findmnt -n -o SOURCE /)
name=$(basename "$(readlink -f "$src")")
[ -r "/sys/class/block/$name/partition" ] || exit 0
part=$(cat "/sys/class/block/$name/partition")
sys=$(readlink -f "/sys/class/block/$name/..")
disk=/dev/$(basename "$sys")
# Sizes in sysfs are in 512-byte sectors.
end=$(( $(cat "/sys/class/block/$name/start") + $(cat "/sys/class/block/$name/size") ))
[ $(( $(cat "$sys/size") - end )) -ge 4096 ] || exit 0
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
