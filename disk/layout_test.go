package disk

import (
	"testing"

	"github.com/kiln-build/kiln/internal/parttype"
	"github.com/kiln-build/kiln/platform"
	"github.com/stretchr/testify/require"
)

func roles(l *Layout) []Role {
	var r []Role
	for _, p := range l.Partitions {
		r = append(r, p.Role)
	}
	return r
}

func TestDefaultLayoutsForEveryBootMode(t *testing.T) {
	cases := []struct {
		table platform.Table
		fw    platform.Firmware
		want  []Role
	}{
		{platform.GPT, platform.UEFI, []Role{RoleESP, RoleRoot}},
		{platform.GPT, platform.BIOS, []Role{RoleBIOS, RoleRoot}},
		{platform.GPT, platform.Hybrid, []Role{RoleBIOS, RoleESP, RoleRoot}},
		{platform.MBR, platform.BIOS, []Role{RoleRoot}},
		{platform.MBR, platform.UEFI, []Role{RoleESP, RoleRoot}},
		{platform.MBR, platform.Hybrid, []Role{RoleESP, RoleRoot}},
	}
	for _, c := range cases {
		l, err := Plan(Spec{Size: 2 << 30, Table: c.table, Firmware: c.fw, ESPSize: 256 * MiB, IDs: IDs{Name: "n"}})
		require.NoError(t, err, "%s+%s", c.table, c.fw)
		require.Equal(t, c.want, roles(l), "%s+%s", c.table, c.fw)
		var prevEnd uint64 = MiB
		for _, p := range l.Partitions {
			require.Zero(t, p.Start%MiB)
			require.Zero(t, p.Size%MiB)
			require.Equal(t, prevEnd, p.Start, "partitions are contiguous from 1 MiB")
			prevEnd = p.Start + p.Size
		}
		if c.table == platform.MBR {
			require.Equal(t, uint64(2<<30), prevEnd, "MBR needs no backup table")
			require.True(t, l.Root().Bootable)
			if esp := l.Find(RoleESP); esp != nil {
				require.Equal(t, byte(0xEF), esp.Type.MBR)
			}
		} else {
			require.Equal(t, uint64(2<<30-MiB), prevEnd)
		}
	}
}

func TestLayoutRules(t *testing.T) {
	root := PartSpec{Label: "root", Role: RoleRoot, Type: parttype.Root, FS: "ext4", Mount: "/"}
	esp := PartSpec{Label: "ESP", Size: 64 * MiB, Role: RoleESP, Type: parttype.ESP, FS: "vfat", Mount: "/boot/efi"}
	data := func(l string) PartSpec { return PartSpec{Label: l, Size: 64 * MiB, Type: parttype.Linux, FS: "ext4"} }
	cases := map[string]struct {
		s    Spec
		want string
	}{
		"five on mbr":   {Spec{Table: platform.MBR, Firmware: platform.BIOS, Partitions: []PartSpec{data("a"), data("b"), data("c"), data("d"), root}}, "at most 4 primary"},
		"two rests":     {Spec{Table: platform.GPT, Firmware: platform.UEFI, Partitions: []PartSpec{esp, {Label: "x", FS: "ext4", Mount: "/var"}, root}}, "only one partition may take the rest"},
		"no esp":        {Spec{Table: platform.GPT, Firmware: platform.UEFI, Partitions: []PartSpec{root}}, "needs an EFI system partition"},
		"no bios boot":  {Spec{Table: platform.GPT, Firmware: platform.BIOS, Partitions: []PartSpec{root}}, "needs a BIOS boot partition"},
		"bios on mbr":   {Spec{Table: platform.MBR, Firmware: platform.BIOS, Partitions: []PartSpec{{Label: "b", Size: MiB, Role: RoleBIOS}, root}}, "exists only on GPT"},
		"no root":       {Spec{Table: platform.GPT, Firmware: platform.UEFI, Partitions: []PartSpec{esp}}, "exactly one partition mounted at /"},
		"does not fit":  {Spec{Size: 100 * MiB, Table: platform.GPT, Firmware: platform.UEFI, Partitions: []PartSpec{{Label: "ESP", Size: 200 * MiB, Role: RoleESP, FS: "vfat"}, root}}, "raise disk.size"},
		"unknown table": {Spec{Table: "apm"}, "unknown partition table"},
	}
	for name, c := range cases {
		if c.s.Size == 0 {
			c.s.Size = 1 << 30
		}
		_, err := Plan(c.s)
		require.ErrorContains(t, err, c.want, name)
	}
}

func TestCHS(t *testing.T) {
	c, h, s := chs(2048)
	require.Equal(t, [3]byte{0, 32, 33}, [3]byte{c, h, s})
	c, h, s = chs(1 << 30)
	require.Equal(t, [3]byte{0xFF, 0xFE, 0xFF}, [3]byte{c, h, s})
}

func TestFstabSwapAndExtraMounts(t *testing.T) {
	l, err := Plan(Spec{Size: 4 << 30, Table: platform.GPT, Firmware: platform.UEFI, IDs: IDs{Name: "n"}, Partitions: []PartSpec{
		{Label: "ESP", Size: 128 * MiB, Role: RoleESP, Type: parttype.ESP, FS: "vfat", Mount: "/boot/efi", MountOpts: "umask=0077"},
		{Label: "boot", Size: 512 * MiB, Type: parttype.Linux, FS: "ext4", Mount: "/boot"},
		{Label: "swap", Size: 256 * MiB, Type: parttype.Swap, FS: "swap"},
		{Label: "var", Size: 1 << 30, Type: parttype.Linux, FS: "ext4", Mount: "/var", MountOpts: "nodev"},
		{Label: "root", Role: RoleRoot, Type: parttype.Root, FS: "ext4", Mount: "/"},
	}})
	require.NoError(t, err)
	f := l.Fstab()
	require.Contains(t, f, "UUID="+l.Mounted("/boot").FSUUID+"\t/boot\text4\tdefaults\t0\t2\n")
	require.Contains(t, f, "UUID="+l.Mounted("/var").FSUUID+"\t/var\text4\tdefaults,nodev\t0\t2\n")
	require.Contains(t, f, "\tnone\tswap\tsw\t0\t0\n")
	require.Contains(t, f, "\t/\text4\tdefaults\t0\t1\n")
}
