package guest

import (
	"encoding/base64"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestParse(t *testing.T) {
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	data := "garbage\x00\r\nnoiseKILN-STATE active 12\nKILN-FAILED-UNITS " + b64("") + "\n" +
		"KILN-TEST 000 0 1500 " + b64("ok\n") + "\n" +
		"KILN-TEST 001 3 20 " + b64("boom\n") + "\n" +
		"KILN-TEST bad line\nKILN-DONE\n"
	r := Parse([]byte(data), []string{"motd", "web"})
	require.True(t, r.Finished)
	require.Equal(t, "active", r.TargetState)
	require.Empty(t, r.FailedUnits)
	require.Len(t, r.Results, 2)
	require.Equal(t, Result{Name: "motd", ExitCode: 0, Duration: 1500 * time.Millisecond, Output: "ok\n", Passed: true}, r.Results[0])
	require.Equal(t, "web", r.Results[1].Name)
	require.False(t, r.Results[1].Passed)
	require.Equal(t, "boom\n", r.Results[1].Output)

	r = Parse([]byte("KILN-STATE inactive 300\n"), nil)
	require.False(t, r.Finished)
	require.Equal(t, "inactive", r.TargetState)
}

func TestConsoleProblems(t *testing.T) {
	log := "[    1.0] ok\n[    2.0] Kernel panic - not syncing: VFS\n[ 3.0] fine\n[ 4.0] BUG: kernel NULL pointer\n"
	require.Equal(t, []string{"[    2.0] Kernel panic - not syncing: VFS", "[ 4.0] BUG: kernel NULL pointer"}, ConsoleProblems([]byte(log)))
	require.Empty(t, ConsoleProblems([]byte("all good\n")))
}

// The kernel's log reported by the guest adds what a quiet console did not
// print; a line seen in both is reported once.
func TestKernelProblems(t *testing.T) {
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	console := "[    2.0] fine\r\n[    3.5] BUG: on the console too\r\n"
	kernel := "[    3.5] BUG: on the console too\n[    9.0] WARNING: CPU: 0 PID: 1\n[    9.1] Call Trace:\n"
	r := Parse([]byte("KILN-KERNEL "+b64(kernel)+"\nKILN-DONE\n"), nil)
	require.Equal(t, []string{"[    3.5] BUG: on the console too", "[    9.1] Call Trace:"}, r.Kernel)
	require.Equal(t, []string{"[    3.5] BUG: on the console too", "[    9.1] Call Trace:"}, KernelProblems([]byte(console), r))
	require.Empty(t, KernelProblems([]byte("quiet\n"), Parse([]byte("KILN-KERNEL \nKILN-DONE\n"), nil)))
}
