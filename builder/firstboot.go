package builder

import (
	"context"
	"fmt"
	"io"

	"github.com/kiln-build/kiln/internal/sandbox"
)

// firstBootUpdates runs in the tree what systemd's ConditionNeedsUpdate=
// units would otherwise run at the image's first boot, the commands of
// ldconfig.service, systemd-journal-catalog-update.service,
// systemd-sysusers.service and systemd-hwdb-update.service (under its own
// condition), and then systemd-update-done, which records /etc and /var as
// up to date with /usr (/etc/.updated, /var/.updated). The first boot then
// skips them: natively at build time they take a second, emulated at boot
// several, on the way to multi-user.target. A tree without systemd is left
// alone. The files it writes are the same from build to build (ldconfig's
// auxiliary cache, which is not, is removed). boot.update_at_first_boot =
// true keeps Debian's way.
const firstBootUpdates = `set -e
[ -x /usr/lib/systemd/systemd-update-done ] || exit 0
ldconfig -X
# ldconfig's auxiliary cache records the libraries' inode numbers and
# times, which differ from build to build; the next ldconfig rebuilds it.
rm -f /var/cache/ldconfig/aux-cache
journalctl --update-catalog
systemd-sysusers
if [ ! -e /usr/lib/udev/hwdb.bin ] || [ -e /etc/udev/hwdb.bin ]; then systemd-hwdb update; fi
/usr/lib/systemd/systemd-update-done
`

// updateForFirstBoot runs firstBootUpdates in the tree. It must come after
// everything that adds to /usr.
func updateForFirstBoot(ctx context.Context, tree string, log io.Writer) error {
	err := sandbox.Run(ctx, sandbox.Spec{Root: tree, Args: []string{"/bin/sh", "-c", firstBootUpdates}, Env: sandbox.DefaultEnv()}, nil, log)
	if err != nil {
		return fmt.Errorf("updating the tree for its first boot (ldconfig, the journal catalog, system users; boot.update_at_first_boot = true leaves them to the first boot): %w", err)
	}
	return nil
}
