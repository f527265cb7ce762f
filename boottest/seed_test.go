package boottest

import (
	"os/exec"
	"testing"

	"github.com/kiln-build/kiln/internal/qemu"
	"github.com/kiln-build/kiln/internal/testutil"
	"github.com/stretchr/testify/require"
)

// User-data reaches the guest as a read-only raw disk after the boot disk:
// a cidata ISO holding it, with a fresh instance-id each time. kiln run and
// kiln test (Boot) both attach it this way; without user-data nothing is
// attached.
func TestAttachUserData(t *testing.T) {
	testutil.Require(t, "isoinfo")
	work := t.TempDir()
	o := qemu.Options{Disks: []qemu.Disk{{Path: "/img/boot.raw", Format: "raw"}}}
	require.NoError(t, attachUserData(&o, nil, work))
	require.Len(t, o.Disks, 1)

	userData := []byte("#cloud-config\nwrite_files: []\n")
	require.NoError(t, attachUserData(&o, userData, work))
	require.Len(t, o.Disks, 2)
	seed := o.Disks[1]
	require.Equal(t, qemu.Disk{Path: seed.Path, Format: "raw", ReadOnly: true}, seed)
	out, err := exec.Command("isoinfo", "-R", "-x", "/user-data", "-i", seed.Path).Output()
	require.NoError(t, err)
	require.Equal(t, string(userData), string(out))
	first, err := exec.Command("isoinfo", "-R", "-x", "/meta-data", "-i", seed.Path).Output()
	require.NoError(t, err)
	require.Regexp(t, `^instance-id: kiln-[0-9a-f]{16}\n$`, string(first))

	o.Disks = o.Disks[:1]
	require.NoError(t, attachUserData(&o, userData, work))
	second, err := exec.Command("isoinfo", "-R", "-x", "/meta-data", "-i", o.Disks[1].Path).Output()
	require.NoError(t, err)
	require.NotEqual(t, string(first), string(second), "a new instance-id for every boot")
}
