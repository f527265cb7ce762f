package qemu

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestCmdlineTPM(t *testing.T) {
	argv, err := Options{Accel: "tcg", TPM: &TPM{StateDir: "/work/tpm", Socket: "/run/k,1/swtpm.sock"}}.Cmdline()
	require.NoError(t, err)
	require.Contains(t, strings.Join(argv, " "),
		" -chardev socket,id=chrtpm,path=/run/k,,1/swtpm.sock -tpmdev emulator,id=tpm0,chardev=chrtpm -device tpm-tis,tpmdev=tpm0")
	_, err = Options{Accel: "tcg", TPM: &TPM{StateDir: "/work/tpm"}}.Cmdline()
	require.ErrorContains(t, err, "TPM.Socket")
	require.Equal(t, []string{"swtpm", "socket", "--tpm2", "--tpmstate", "dir=/work/tpm", "--ctrl", "type=unixio,path=/run/s",
		"--log", "file=/work/tpm/swtpm.log", "--terminate"}, SwtpmArgs(TPM{StateDir: "/work/tpm", Socket: "/run/s"}))
}

// StopOn reads ttyS0 through QEMU's stdout; Run writes the console log
// from it (TestRunStopOn), so QEMU is given no log file of its own.
func TestCmdlineStopOnTapsTheConsole(t *testing.T) {
	argv, err := Options{Accel: "tcg", ConsoleLog: "/out/serial.log", StopOn: []string{"Access Denied"}}.Cmdline()
	require.NoError(t, err)
	require.Contains(t, strings.Join(argv, " "), " -chardev stdio,id=ttyS0 -serial chardev:ttyS0")
}

func TestConsoleWatchAcrossWrites(t *testing.T) {
	var got []string
	w := &consoleWatch{patterns: []string{"Access Denied", "Security Violation"}, onMatch: func(s string) { got = append(got, s) }}
	for _, chunk := range []string{"BdsDxe: failed to load Boot0001 \"UEFI Misc Device\": Acc", "ess Den", "ied\r\n", "Security Violation"} {
		n, err := w.Write([]byte(chunk))
		require.NoError(t, err)
		require.Equal(t, len(chunk), n)
	}
	require.Equal(t, []string{"Access Denied"}, got, "reported once")
}

// A guest whose console shows a StopOn string is stopped, without error,
// and the console log keeps what it printed: at once, or with StopGrace
// that long after the match (so that what follows it reaches the log).
func TestRunStopOn(t *testing.T) {
	requireQEMU(t)
	for _, c := range []struct {
		name, printed, stopOn string
		grace                 time.Duration
	}{
		{"at-once", "kiln: refused\r\n", "refused", 0},
		{"after-grace", "Kernel panic - not syncing: test\r\n", "Kernel panic - not syncing", 3 * time.Second},
	} {
		t.Run(c.name, func(t *testing.T) {
			log := filepath.Join(t.TempDir(), "serial.log")
			start := time.Now()
			res, err := Run(context.Background(), Options{
				Accel: DetectAccel(context.Background()), MemoryMiB: 128,
				Disks:      []Disk{{Path: bootDisk(t, serialProgram(c.printed, 0x21)), Format: "raw"}},
				ConsoleLog: log, StopOn: []string{"never printed", c.stopOn}, StopGrace: c.grace,
				Timeout: time.Minute, // no DebugExit device: the program hangs after printing
			})
			took := time.Since(start)
			require.NoError(t, err)
			require.Equal(t, c.stopOn, res.StoppedOn)
			require.False(t, res.TimedOut)
			require.GreaterOrEqual(t, took, c.grace)
			require.Less(t, took, 30*time.Second+c.grace)
			data, err := os.ReadFile(log)
			require.NoError(t, err)
			require.Contains(t, string(data), strings.TrimSpace(c.printed))
			noProcessWith(t, log)
		})
	}
}

func requireSwtpm(t *testing.T) {
	t.Helper()
	for _, b := range []string{SwtpmBinary, SwtpmSetupBinary} {
		if _, err := exec.LookPath(b); err != nil {
			missing(t, b+" is not installed (apt-get install swtpm swtpm-tools)")
		}
	}
}

// A guest boots with a TPM: swtpm_setup manufactures the state in the
// given directory, QEMU connects to swtpm (it would not start otherwise),
// and swtpm is gone when Run returns. (SeaBIOS and a boot sector keep it
// quick; the e2e tests read PCRs in a Debian guest under OVMF.)
func TestRunWithTPM(t *testing.T) {
	requireQEMU(t)
	requireSwtpm(t)
	state := filepath.Join(t.TempDir(), "tpm")
	var console bytes.Buffer
	res, err := Run(context.Background(), Options{
		Accel: DetectAccel(context.Background()), MemoryMiB: 128,
		Disks: []Disk{{Path: bootDisk(t, serialProgram("kiln: booted with a TPM\r\n", 0x21)), Format: "raw"}},
		TPM:   &TPM{StateDir: state}, Console: &console,
		StopOn: []string{"booted with a TPM"}, Timeout: time.Minute,
	})
	require.NoError(t, err)
	require.Equal(t, "booted with a TPM", res.StoppedOn, "console:\n%s", console.String())
	require.FileExists(t, filepath.Join(state, "tpm2-00.permall"), "swtpm_setup manufactured the TPM")
	require.Contains(t, strings.Join(res.Cmdline, " "), "-device tpm-tis,tpmdev=tpm0")
	noProcessWith(t, "dir="+state)
}
