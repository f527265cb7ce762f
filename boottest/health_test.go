package boottest

import (
	"encoding/xml"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/kiln-build/kiln/internal/guest"
	"github.com/kiln-build/kiln/internal/qemu"
	"github.com/kiln-build/kiln/internal/testutil"
	"github.com/kiln-build/kiln/manifest"
	"github.com/kiln-build/kiln/platform"
	"github.com/kiln-build/kiln/recipes"
	"github.com/stretchr/testify/require"
)

func TestHealthChecksAreNamedAndSkippable(t *testing.T) {
	rep := guest.Report{Finished: true, TargetState: "active", FailedUnits: "broken.service loaded failed failed", SecureBoot: "1"}
	h := manifest.Health{Firmware: "uefi", MultiUser: true}
	evaluateHealth(&h, rep, bootEnd{budget: time.Minute, secureBoot: true}, nil)
	require.Len(t, h.Problems, 1)
	require.Contains(t, h.Problems[0], "broken.service")
	var names []string
	for _, c := range h.Checks {
		names = append(names, c.Name)
	}
	require.Equal(t, append([]string{checkFinished}, recipes.HealthChecks...), names, "every check the recipe may skip is reported")

	skipped := manifest.Health{Firmware: "uefi", MultiUser: true}
	evaluateHealth(&skipped, rep, bootEnd{budget: time.Minute}, []string{"failed-units"})
	require.Empty(t, skipped.Problems)
	require.Equal(t, manifest.Skipped, skipped.Checks[2].Status)
	require.Contains(t, skipped.Checks[2].Detail, "broken.service")

	// A guest that never finished fails whatever the recipe skips.
	dead := manifest.Health{Firmware: "bios"}
	evaluateHealth(&dead, guest.Report{}, bootEnd{timedOut: true, budget: time.Minute}, recipes.HealthChecks)
	require.Len(t, dead.Problems, 1)
	require.Contains(t, dead.Problems[0], "did not finish within 1m0s")

	path := filepath.Join(t.TempDir(), "tests.xml")
	require.NoError(t, WriteJUnit(path, "img", []manifest.TestResult{{Name: "t1", Firmware: "uefi", Status: "pass"}}, []manifest.Health{h, skipped}))
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	var ts struct {
		Tests    int `xml:"tests,attr"`
		Failures int `xml:"failures,attr"`
		Skipped  int `xml:"skipped,attr"`
		Cases    []struct {
			Name    string    `xml:"name,attr"`
			Failure *struct{} `xml:"failure"`
			Skipped *struct{} `xml:"skipped"`
		} `xml:"testcase"`
	}
	require.NoError(t, xml.Unmarshal(data, &ts))
	require.Equal(t, 10, ts.Tests, "5 checks of a Secure Boot boot, 4 of another, 1 test")
	require.Equal(t, 1, ts.Failures)
	require.Equal(t, 1, ts.Skipped)
	require.Equal(t, "health/failed-units", ts.Cases[2].Name)
	require.NotNil(t, ts.Cases[2].Failure)
	require.Equal(t, "health/failed-units", ts.Cases[7].Name)
	require.NotNil(t, ts.Cases[7].Skipped)
}

// Under Secure Boot firmware the secure-boot check reads the guest's
// SecureBoot variable; a firmware refusal is what the boot failed on.
func TestSecureBootHealth(t *testing.T) {
	check := func(h manifest.Health, name string) manifest.HealthCheck {
		for _, c := range h.Checks {
			if c.Name == name {
				return c
			}
		}
		t.Fatalf("no check %s in %v", name, h.Checks)
		return manifest.HealthCheck{}
	}
	ok := guest.Report{Finished: true, TargetState: "active"}
	for value, want := range map[string]string{"1": "", "0": "is 0, not 1", "absent": "no SecureBoot EFI variable", "": "never reported"} {
		rep := ok
		rep.SecureBoot = value
		h := manifest.Health{MultiUser: true}
		evaluateHealth(&h, rep, bootEnd{budget: time.Minute, secureBoot: true}, nil)
		c := check(h, "secure-boot")
		if want == "" {
			require.Equal(t, manifest.Pass, c.Status)
			require.Empty(t, h.Problems)
			continue
		}
		require.Equal(t, manifest.Fail, c.Status, value)
		require.Contains(t, c.Detail, want)
		require.Len(t, h.Problems, 1)
	}
	h := manifest.Health{}
	evaluateHealth(&h, ok, bootEnd{budget: time.Minute}, nil)
	for _, c := range h.Checks {
		require.NotEqual(t, "secure-boot", c.Name, "only boots under Secure Boot firmware have it")
	}

	console := []byte("\x1b[2J\x1b[01;01HBdsDxe: loading Boot0001 \"UEFI Misc Device\" from PciRoot(0x0)/Pci(0x1,0x0)\r\n" +
		"BdsDxe: failed to load Boot0001 \"UEFI Misc Device\" from PciRoot(0x0)/Pci(0x1,0x0): Access Denied\r\n")
	line := consoleLine(console, "Access Denied")
	require.Equal(t, `BdsDxe: failed to load Boot0001 "UEFI Misc Device" from PciRoot(0x0)/Pci(0x1,0x0): Access Denied`, line)
	refused := manifest.Health{}
	evaluateHealth(&refused, guest.Report{}, bootEnd{budget: time.Minute, secureBoot: true, refused: line}, nil)
	require.Equal(t, manifest.Fail, check(refused, "finished").Status)
	require.Contains(t, refused.Problems[0], "the firmware refused to start the boot loader under Secure Boot")
	require.Contains(t, refused.Problems[0], "Access Denied")

	// A kernel panic ends the boot at once and says so, naming the panic.
	console = []byte("[    0.912345] Kernel panic - not syncing: corrupted stack end detected inside scheduler\r\n[    0.912400] CPU: 0 PID: 1 Comm: swapper/0\r\n")
	line = consoleLine(console, KernelPanic)
	require.Equal(t, "[    0.912345] Kernel panic - not syncing: corrupted stack end detected inside scheduler", line)
	panicked := manifest.Health{}
	evaluateHealth(&panicked, guest.Report{}, bootEnd{budget: time.Minute, panicked: line}, nil)
	require.Equal(t, manifest.Fail, check(panicked, "finished").Status)
	require.Contains(t, panicked.Problems[0], "the guest kernel panicked")
	require.Contains(t, panicked.Problems[0], "corrupted stack end detected")
}

// A Secure Boot boot gets the descriptor's Secure Boot firmware with keys
// enrolled (or the given variable store), the refusals to stop on and the
// TPM's state in the boot's directory; a BIOS boot gets none of it.
func TestDevicesApply(t *testing.T) {
	if _, err := SecureBootFirmware(""); err != nil {
		if testutil.Strict() {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	work := t.TempDir()
	var o qemu.Options
	d := Devices{SecureBoot: true, TPM: true}.forBoot(platform.BootUEFI)
	require.NoError(t, d.apply(&o, platform.BootUEFI, work))
	require.Equal(t, qemu.UEFI, o.Firmware)
	require.Contains(t, o.UEFI.Features, "enrolled-keys")
	require.True(t, o.UEFI.RequiresSMM())
	require.Equal(t, Refusals, o.StopOn)
	require.Equal(t, filepath.Join(work, "tpm"), o.TPM.StateDir)
	require.Equal(t, filepath.Join(work, "vars-uefi.fd"), o.VarsFile)

	vars := filepath.Join(work, "my-vars.fd")
	o = qemu.Options{}
	d = Devices{SecureBootVars: vars}.forBoot(platform.BootUEFI)
	require.True(t, d.SecureBoot, "a variable store means Secure Boot")
	require.NoError(t, d.apply(&o, platform.BootUEFI, work))
	require.Equal(t, vars, o.UEFI.VarsTemplate)
	require.Nil(t, o.TPM)

	o = qemu.Options{}
	d = Devices{SecureBoot: true, TPM: true}.forBoot(platform.BootBIOS)
	require.False(t, d.SecureBoot)
	require.NoError(t, d.apply(&o, platform.BootBIOS, work))
	require.Equal(t, qemu.BIOS, o.Firmware)
	require.Empty(t, o.StopOn)
	require.NotNil(t, o.TPM, "a TPM works under BIOS too")
}

func TestInt3Oops(t *testing.T) {
	// as 6.4 and 6.12 kernels print the oops QEMU's race causes
	for _, l := range []string{
		"[    3.093098] int3: 0000 [#1] PREEMPT SMP NOPTI",
		"[   14.220729] Oops: int3: 0000 [#1] SMP NOPTI",
	} {
		console := []string{"[    3.2] Call Trace:", l + "\r", "[    3.3] RIP: 0010:__mod_timer+0x1c3/0x370"}
		require.Equal(t, l, Int3Oops(console))
	}
	for _, other := range [][]string{
		nil,
		{"[   14.220729] Oops: invalid opcode: 0000 [#1] SMP NOPTI", "[   14.22] kernel BUG at arch/x86/kernel/alternative.c:2531!"},
		{"[    5.1] Oops: general protection fault, probably for non-canonical address 0xdead: 0000 [#1] SMP NOPTI"},
		{"[    9.0] Kernel panic - not syncing: Attempted to kill init! exitcode=0x0000000b"},
	} {
		require.Empty(t, Int3Oops(other), "%q", other)
	}
	require.Equal(t, "/a/serial-uefi.int3.log", Int3ConsoleLog("/a/serial-uefi.log"))
}
