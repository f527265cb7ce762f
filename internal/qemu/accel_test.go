package qemu

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestDetectAccelHonoursEnv(t *testing.T) {
	for _, v := range []string{"kvm", "tcg"} {
		t.Setenv(AccelEnv, v)
		require.Equal(t, v, DetectAccel(context.Background()))
		_, reason := DetectAccelReason(context.Background())
		require.Equal(t, "KILN_ACCEL="+v+" forces it", reason)
	}
}

func TestDetectAccel(t *testing.T) {
	requireQEMU(t)
	t.Setenv(AccelEnv, "")
	start := time.Now()
	accel, reason := DetectAccelReason(context.Background())
	t.Logf("accelerator %s after %s: %s", accel, time.Since(start).Round(time.Millisecond), reason)
	require.Contains(t, []string{"kvm", "tcg"}, accel)
	require.NotEmpty(t, reason)

	// Cached: the second call answers at once, with the same answer.
	start = time.Now()
	again, reason2 := DetectAccelReason(context.Background())
	require.Equal(t, accel, again)
	require.Equal(t, reason, reason2)
	require.Less(t, time.Since(start), 100*time.Millisecond)

	// A value other than kvm/tcg is ignored, and said so.
	t.Setenv(AccelEnv, "xen")
	again, reason3 := DetectAccelReason(context.Background())
	require.Equal(t, accel, again)
	require.True(t, strings.HasPrefix(reason3, `ignoring KILN_ACCEL="xen"`), reason3)
}

// TestProbeGuestsRunUnderTCG checks the generated probe firmware and boot
// sector themselves: under TCG both must reach the exit port, or the KVM
// probe would fail for the wrong reason.
func TestProbeGuestsRunUnderTCG(t *testing.T) {
	requireQEMU(t)
	start := time.Now()
	require.NoError(t, probeAccel(context.Background(), DefaultBinary, "tcg"))
	t.Logf("both probe guests under TCG: %s", time.Since(start).Round(time.Millisecond))
}

func TestProbeFailureIsExplained(t *testing.T) {
	// "false" stands in for a QEMU that exits 1 at once.
	err := probeAccel(context.Background(), "false", "kvm")
	require.EqualError(t, err, "firmware executed from flash: exit status 1, want 85")
}

func TestStderrWatch(t *testing.T) {
	fired := 0
	w := &stderrWatch{onFatal: func() { fired++ }}
	for _, chunk := range []string{"qemu: warning: something\nKVM inter", "nal error. Suberror: 1\nextra data[0]: 0x1\n", "emulation failure\nEAX=0\n", "KVM internal error again\n"} {
		_, _ = w.Write([]byte(chunk))
	}
	require.Equal(t, 1, fired)
	require.Equal(t, []string{"KVM internal error. Suberror: 1", "emulation failure", "KVM internal error again"}, w.fatalLines())

	// Still noticed after more stderr than the watch keeps.
	late := 0
	noisy := &stderrWatch{onFatal: func() { late++ }}
	_, _ = noisy.Write([]byte(strings.Repeat("qemu: warning: noise\n", 1000)))
	_, _ = noisy.Write([]byte("KVM internal"))
	_, _ = noisy.Write([]byte(" error. Suberror: 1\n"))
	require.Equal(t, 1, late)

	quiet := &stderrWatch{}
	_, _ = quiet.Write([]byte("qemu: warning: nothing fatal\n"))
	require.Nil(t, quiet.fatalLines())
}

func TestWriteBootDisk(t *testing.T) {
	p := filepath.Join(t.TempDir(), "boot.raw")
	require.NoError(t, writeBootDisk(p, hangProgram))
	data, err := os.ReadFile(p)
	require.NoError(t, err)
	require.Len(t, data, 1<<20)
	require.Equal(t, hangProgram, data[:len(hangProgram)])
	require.Equal(t, []byte{0x55, 0xaa}, data[510:512])
	require.Error(t, writeBootDisk(p, make([]byte, 447)))
}

func TestWriteResetFlash(t *testing.T) {
	p := filepath.Join(t.TempDir(), "flash.fd")
	require.NoError(t, writeResetFlash(p, flashProbeCode))
	data, err := os.ReadFile(p)
	require.NoError(t, err)
	require.Len(t, data, 64<<10)
	require.Equal(t, flashProbeCode, data[0xfff0:0xfff0+len(flashProbeCode)])
	require.Equal(t, []byte{0x7f, 0x03}, data[0xffe0:0xffe2])
	require.Equal(t, byte(0xff), data[0])
}
