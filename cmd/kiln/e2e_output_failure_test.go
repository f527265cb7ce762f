package main

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kiln-build/kiln/internal/testhook"
)

// An output that fails while the test VM boots ends the boot: the build
// fails at once with the output's error instead of after the tests, and,
// like every failed build, publishes nothing and leaves no process, mount
// or staging directory.
//
// The outputs are written while the test VM runs. kiln runs on one CPU
// (taskset), so they are written one at a time in the recipe's order, and
// the hook holds the raw image's job once it is compressed. While it is
// held the test puts a directory where the qcow2 output goes, waits until
// QEMU runs, and lets kiln go on: the qcow2 job fails while the guest is
// still booting.
func TestE2EOutputFailureEndsTheBoot(t *testing.T) {
	requireE2E(t)
	self, err := os.Executable()
	require.NoError(t, err)
	m := &matrix{self: self, cache: sharedCache(t), pin: "0"}
	images, tmp := t.TempDir(), t.TempDir()
	recipe := m.recipe(t, "output-fails", `
  output { formats = ["raw", "qcow2"] }`)
	p := m.startIn(t, tmp, testhook.OutputWritten+"raw", "build", "--images", images, "--cache", m.cache, recipe)
	p.waitPaused(20 * time.Minute)
	require.Equal(t, "test", p.stage(), "the outputs are written while the test stage runs; points reached: %q", p.points())
	own := stagingOf(p.cmd.Process.Pid, images)
	require.NotEmpty(t, own)
	require.NoError(t, os.Mkdir(filepath.Join(own, "artifact", "output-fails.qcow2"), 0o755))

	p.waitChild("QEMU", 5*time.Minute, isEmulator)
	fam, ok := familyOf(p.cmd.Process.Pid)
	require.True(t, ok)
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGUSR1))
	select {
	case <-p.exited:
	case <-time.After(5 * time.Minute):
		t.Fatalf("kiln did not stop the boot after the qcow2 output failed:\n%s", p.out.String())
	}
	out := p.out.String()
	require.Equal(t, exitFailed, p.cmd.ProcessState.ExitCode(), out)
	require.Contains(t, out, "(stopped: an output failed)", "the test stage ended its boot")
	require.Contains(t, out, "writing the qcow2 output", "the build fails with the output's error")
	require.NotContains(t, out, "passed)", "no test result is reported from a boot that was ended")
	require.True(t, keptLogEndsIn(images, "outputs"), "the failed build's log is kept in .failed/ and ends in the outputs stage")

	clean(t, fam, []string{images, tmp})
	require.Empty(t, listJSON(t, images), "nothing is published")
	require.Empty(t, entries(filepath.Join(images, ".staging")), "the staging directory is gone")
	require.Empty(t, entries(tmp))
	t.Logf("kiln's output:\n%s", strings.TrimSpace(out))
}
