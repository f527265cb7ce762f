package builder

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kiln-build/kiln/recipes"
	"github.com/stretchr/testify/require"
)

func TestInitramfsSetup(t *testing.T) {
	require.Nil(t, initramfsSetup(recipes.InitramfsMost), "Debian's default needs no files")
	files := initramfsSetup(recipes.InitramfsVM)
	require.Len(t, files, 2)
	require.Equal(t, "/etc/initramfs-tools/conf.d/kiln.conf", files[0].Path)
	require.Contains(t, files[0].Data, "\nMODULES=list\n")
	hook := files[1]
	require.Equal(t, "/etc/initramfs-tools/hooks/kiln", hook.Path)
	require.Equal(t, os.FileMode(0o755), hook.Mode)
	require.Contains(t, hook.Data, "manual_add_modules virtio_pci virtio_blk virtio_scsi sd_mod ahci ")
	// The hook answers initramfs-tools' prereqs query and is valid sh.
	p := filepath.Join(t.TempDir(), "kiln")
	require.NoError(t, os.WriteFile(p, []byte(hook.Data), 0o755))
	out, err := exec.Command("sh", "-n", p).CombinedOutput()
	require.NoError(t, err, string(out))
	out, err = exec.Command("sh", p, "prereqs").CombinedOutput()
	require.NoError(t, err, string(out))
	require.Empty(t, strings.TrimSpace(string(out)))
}
