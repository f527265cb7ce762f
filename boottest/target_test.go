package boottest

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/kiln-build/kiln/disk"
	"github.com/kiln-build/kiln/internal/parttype"
	"github.com/kiln-build/kiln/platform"
	"github.com/stretchr/testify/require"
)

func TestDetectFirmware(t *testing.T) {
	esp := disk.Found{TypeGUID: parttype.ESP.GUID, FS: "vfat"}
	biosBoot := disk.Found{TypeGUID: parttype.BIOS.GUID}
	root := disk.Found{TypeGUID: parttype.Root.GUID, FS: "ext4"}
	zero := make([]byte, 512)
	code := make([]byte, 512)
	code[0] = 0xEB
	for _, c := range []struct {
		in   disk.Inspected
		mbr  []byte
		want []platform.Boot
	}{
		{disk.Inspected{Table: "gpt", Partitions: []disk.Found{esp, root}}, zero, []platform.Boot{"uefi"}},
		{disk.Inspected{Table: "gpt", Partitions: []disk.Found{biosBoot, root}}, code, []platform.Boot{"bios"}},
		{disk.Inspected{Table: "gpt", Partitions: []disk.Found{biosBoot, esp, root}}, code, []platform.Boot{"uefi", "bios"}},
		{disk.Inspected{Table: "gpt", Partitions: []disk.Found{root}}, zero, []platform.Boot{"uefi"}},
		{disk.Inspected{Table: "mbr", Partitions: []disk.Found{{TypeMBR: 0x83, FS: "ext4"}}}, code, []platform.Boot{"bios"}},
		{disk.Inspected{Table: "mbr", Partitions: []disk.Found{{TypeMBR: 0xEF, FS: "vfat"}, {TypeMBR: 0x83, FS: "ext4"}}}, code, []platform.Boot{"uefi", "bios"}},
		{disk.Inspected{Table: "mbr", Partitions: []disk.Found{{TypeMBR: 0xEF, FS: "vfat"}, {TypeMBR: 0x83, FS: "ext4"}}}, zero, []platform.Boot{"uefi"}},
	} {
		require.Equal(t, c.want, DetectFirmware(&c.in, c.mbr), "%+v", c.in)
	}
}

func TestOpenTargetUsageErrors(t *testing.T) {
	images := t.TempDir()
	ctx := context.Background()
	var ue *UsageError
	_, err := OpenTarget(ctx, filepath.Join(images, "missing.raw"), images, t.TempDir())
	require.ErrorAs(t, err, &ue)
	_, err = OpenTarget(ctx, "web@1.x.x", images, t.TempDir())
	require.ErrorAs(t, err, &ue)
	require.ErrorContains(t, err, `no image "web" in the catalog`)
	require.NoError(t, os.MkdirAll(filepath.Join(images, "web", "1.2.0", "1"), 0o755))
	require.NoError(t, os.MkdirAll(filepath.Join(images, "web", "1.10.0", "1"), 0o755))
	require.NoError(t, os.MkdirAll(filepath.Join(images, "web", "1.10.0", "2"), 0o755))
	p, err := resolveCatalog("web@1.x.x", images)
	require.NoError(t, err)
	require.Equal(t, filepath.Join(images, "web", "1.10.0", "2"), p, "newest version, newest build")
	p, err = resolveCatalog("web@1.2.0/1", images)
	require.NoError(t, err)
	require.Equal(t, filepath.Join(images, "web", "1.2.0", "1"), p)
	_, err = resolveCatalog("web@2.x.x", images)
	require.ErrorContains(t, err, "no version of web")
	_, err = OpenTarget(ctx, "web@1.x.x", images, t.TempDir())
	require.ErrorContains(t, err, "not a Kiln artifact (no manifest.json)")
	notDisk := filepath.Join(t.TempDir(), "zeros.raw")
	require.NoError(t, os.WriteFile(notDisk, make([]byte, 1<<20), 0o644))
	_, err = OpenTarget(ctx, notDisk, images, t.TempDir())
	require.ErrorAs(t, err, &ue)
	require.ErrorContains(t, err, "no partition table")
}
