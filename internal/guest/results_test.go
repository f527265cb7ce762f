package guest

import (
	"encoding/base64"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestParse(t *testing.T) {
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	data := "garbage\x00\r\nnoiseKILN-STATE active 12\nKILN-SECURE-BOOT 1\nKILN-FAILED-UNITS " + b64("") + "\n" +
		"KILN-TEST 000 0 1500 " + b64("ok\n") + "\n" +
		"KILN-TEST 001 3 20 " + b64("boom\n") + "\n" +
		"KILN-TEST bad line\nKILN-DONE\n"
	r := Parse([]byte(data), []string{"motd", "web"})
	require.True(t, r.Finished)
	require.Equal(t, "active", r.TargetState)
	require.Empty(t, r.FailedUnits)
	require.Equal(t, "1", r.SecureBoot)
	require.Len(t, r.Results, 2)
	require.Equal(t, Result{Name: "motd", ExitCode: 0, Duration: 1500 * time.Millisecond, Output: "ok\n", Passed: true}, r.Results[0])
	require.Equal(t, "web", r.Results[1].Name)
	require.False(t, r.Results[1].Passed)
	require.Equal(t, "boom\n", r.Results[1].Output)

	r = Parse([]byte("KILN-STATE inactive 300\n"), nil)
	require.False(t, r.Finished)
	require.Equal(t, "inactive", r.TargetState)
	require.Empty(t, r.SecureBoot, "not reported")
}

// The runner's probe reads the value byte after the 4 attribute bytes.
func TestSecureBootProbe(t *testing.T) {
	dir := t.TempDir()
	for name, data := range map[string][]byte{"on": {0x06, 0, 0, 0, 1}, "off": {0x06, 0, 0, 0, 0}} {
		path := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(path, data, 0o644))
		out, err := exec.Command("sh", "-c", "exec 3>&1; sbvar="+path+"\n"+secureBootProbe).CombinedOutput()
		require.NoError(t, err, "%s", out)
		want := map[string]string{"on": "1", "off": "0"}[name]
		require.Equal(t, "KILN-SECURE-BOOT "+want+"\n", string(out))
	}
	out, err := exec.Command("sh", "-c", "exec 3>&1; sbvar="+filepath.Join(dir, "none")+"\n"+secureBootProbe).CombinedOutput()
	require.NoError(t, err)
	require.Equal(t, "KILN-SECURE-BOOT absent\n", string(out))
	require.Contains(t, runner, "sbvar="+secureBootVar+"\n"+secureBootProbe)
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
