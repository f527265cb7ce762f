package guest

import (
	"bytes"
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"github.com/kiln-build/kiln/manifest"
	"github.com/stretchr/testify/require"
)

func TestConsoleRecorderStampsLineStarts(t *testing.T) {
	r := NewConsoleRecorder()
	r.start = time.Now().Add(-time.Second) // QEMU started a second ago
	_, _ = r.Write([]byte("first\r\nsec"))
	_, _ = r.Write([]byte("ond\nthird\n\nlast"))
	r.start = r.start.Add(-time.Second) // a second later
	_, _ = r.Write([]byte(" line, continued"))
	_, _ = r.Write([]byte(" at once\nand the next"))
	lines := r.Lines()
	want := []string{"first\r", "second", "third", "", "last", " line, continued at once", "and the next"}
	require.Len(t, lines, len(want))
	for i, w := range want {
		require.Equal(t, w, lines[i].Text)
	}
	for i, at := range []float64{1, 1, 1, 1, 1, 2, 2} {
		require.InDelta(t, at, lines[i].At.Seconds(), 0.2, "line %d is stamped when its first byte arrived", i)
	}

	var buf bytes.Buffer
	require.NoError(t, WriteTimedConsole(&buf, lines))
	back, err := ReadTimedConsole(&buf)
	require.NoError(t, err)
	require.Len(t, back, len(lines))
	for i := range lines {
		require.Equal(t, strings.TrimSuffix(lines[i].Text, "\r"), back[i].Text, "carriage returns are dropped")
		require.InDelta(t, lines[i].At.Seconds(), back[i].At.Seconds(), 0.001)
	}
	_, err = ReadTimedConsole(strings.NewReader("1.5 ok\nnope text\n"))
	require.ErrorContains(t, err, `line 2: "nope" is not a time`)
}

func TestParseBootReport(t *testing.T) {
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	boot := "ActiveState=active\nActiveEnterTimestampMonotonic=12500000\n" +
		"[    1.901234] Run /init as init process\n" +
		"[    3.500000] EXT4-fs (vda2): mounted filesystem 0b9f ro with ordered data mode. Quota mode: none.\n" +
		"[    5.250000] systemd[1]: systemd 257.13-1~deb13u1 running in system mode (+PAM +AUDIT)\n" +
		"[    9.000000] EXT4-fs (vda3): mounted filesystem 77aa r/w with ordered data mode.\n"
	blame := "         2.513s kiln-growroot.service\n1min 2.001s slow.service\n    345ms dbus.service\n     12us x.mount\nnot a line\n"
	r := Parse([]byte("KILN-STATE active 0\nKILN-BOOT "+b64(boot)+"\nKILN-UNITS "+b64(blame)+"\nKILN-DONE\n"), nil)
	require.Equal(t, BootClocks{Init: 1.901234, Root: 3.5, Systemd: 5.25, MultiUser: 12.5}, r.Clocks)
	require.Equal(t, []manifest.UnitTime{{Unit: "slow.service", Seconds: 62.001}, {Unit: "kiln-growroot.service", Seconds: 2.513},
		{Unit: "dbus.service", Seconds: 0.345}, {Unit: "x.mount", Seconds: 0}}, r.Units)

	// A guest whose systemd reports nothing (multi-user not reached) leaves zeros.
	r = Parse([]byte("KILN-BOOT "+b64("ActiveState=inactive\nActiveEnterTimestampMonotonic=0\n")+"\n"), nil)
	require.Equal(t, BootClocks{}, r.Clocks)
}

func line(sec float64, text string) ConsoleLine {
	return ConsoleLine{At: seconds(sec), Text: text}
}

// Without a report from the guest, the profile comes from the console alone.
func TestProfileFromConsoleOnly(t *testing.T) {
	console := []ConsoleLine{
		line(0.2, "\x1b[2J\x1b[01;01HBdsDxe: loading Boot0001 \"UEFI Misc Device\" from PciRoot(0x0)/Pci(0x2,0x0)\r"),
		line(6.0, "BdsDxe: starting Boot0001 \"UEFI Misc Device\" from PciRoot(0x0)/Pci(0x2,0x0)\r"),
		line(7.0, "\x1b[0m\x1b[30m\x1b[40mLoading Linux 6.12.0-cloud-amd64 ...\r"),
		line(9.0, "EFI stub: Loaded initrd from LINUX_EFI_INITRD_MEDIA_GUID device path\r"),
		line(11.0, "[    0.000000] Linux version 6.12.0-cloud-amd64\r"), // buffered until the console came up
		line(11.1, "[    0.800000] smp: Brought up 1 node, 2 CPUs\r"),
		line(12.0, "[    1.600000] Run /init as init process\r"),
		line(12.5, "Loading, please wait...\r"),
		line(15.0, "[    4.700000] EXT4-fs (vda2): mounted filesystem 0b9f ro with ordered data mode.\r"),
		line(16.0, "[!p]104[    5.700000] systemd[1]: systemd 257.13-1~deb13u1 running in system mode (+PAM)\r"),
		line(16.1, "Welcome to \x1b[1mDebian GNU/Linux 13 (trixie)\x1b[0m!\r"),
		line(30.0, "[  OK  ] Reached target \x1b[0;1;39mmulti-user.target\x1b[0m - Multi-User System.\r"),
	}
	p := Profile(console, BootClocks{})
	require.Equal(t, &manifest.BootProfile{Firmware: 6, Bootloader: 7, Kernel: 10.3, Init: 12, Root: 15, Systemd: 16, MultiUser: 30}, p)

	// Only the firmware spoke: the boot stopped in the bootloader.
	require.Equal(t, &manifest.BootProfile{Firmware: 6}, Profile(console[:2], BootClocks{}))
	// A quiet kernel: the EFI stub's line is the only sign of the kernel.
	require.Equal(t, &manifest.BootProfile{Firmware: 6, Bootloader: 7, Kernel: 9}, Profile(console[:4], BootClocks{}))
	require.Nil(t, Profile(nil, BootClocks{}))
	require.Nil(t, Profile([]ConsoleLine{line(1, "nothing to see")}, BootClocks{}))
}

// With the guest's report, a quiet console still gives every milestone:
// KILN-CLOCK places the guest's clock on the host's.
func TestProfileFromGuestClocks(t *testing.T) {
	console := []ConsoleLine{
		line(5.0, "BdsDxe: starting Boot0001 \"UEFI Misc Device\" from PciRoot(0x0)/Pci(0x2,0x0)\r"),
		line(5.5, "Loading Linux 6.12.0-cloud-amd64 ...\r"),
		line(22.0, "KILN-CLOCK 14.00\r"),
	}
	clocks := BootClocks{Init: 1.5, Root: 3.25, Systemd: 4, MultiUser: 13.5}
	require.Equal(t, &manifest.BootProfile{Firmware: 5, Bootloader: 5.5, Kernel: 8, Init: 9.5, Root: 11.25, Systemd: 12, MultiUser: 21.5},
		Profile(console, clocks))

	// Without KILN-CLOCK the kernel's console timestamps place the clocks.
	console = append(console[:2], line(8.0, "[    1.000000] x"), line(7.5, "[    0.500000] y"))
	require.Equal(t, &manifest.BootProfile{Firmware: 5, Bootloader: 5.5, Kernel: 7, Init: 8.5, Root: 10.25, Systemd: 11, MultiUser: 20.5},
		Profile(console, clocks))
}
