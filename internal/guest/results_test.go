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
