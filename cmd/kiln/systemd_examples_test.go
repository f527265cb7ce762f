package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kiln-build/kiln/internal/testutil"
	"github.com/stretchr/testify/require"
)

// The systemd units in examples/systemd pass systemd-analyze verify, which
// reports unknown directives, bad values and calendar specifications. Their
// /usr/local/bin/kiln is pointed at an executable that exists here (verify
// checks it), and the templates are verified as an instance. Skipped when
// systemd-analyze is missing, except in CI (KILN_REQUIRE_QEMU=1).
func TestSystemdExamplesVerify(t *testing.T) {
	testutil.Require(t, "systemd-analyze")
	analyze, err := exec.LookPath("systemd-analyze")
	require.NoError(t, err)
	self, err := os.Executable()
	require.NoError(t, err)
	dir := t.TempDir()
	units := map[string]string{
		"kiln-schedule.service": "kiln-schedule.service",
		"kiln-build@.service":   "kiln-build@demo.service",
		"kiln-build@.timer":     "kiln-build@demo.timer",
	}
	var paths []string
	for src, dst := range units {
		data, err := os.ReadFile(filepath.Join("../../examples/systemd", src))
		require.NoError(t, err)
		text := strings.ReplaceAll(string(data), "/usr/local/bin/kiln", self)
		if strings.HasSuffix(src, ".service") {
			require.Contains(t, text, "ExecStart="+self+" ", src)
		}
		path := filepath.Join(dir, dst)
		require.NoError(t, os.WriteFile(path, []byte(text), 0o644))
		paths = append(paths, path)
	}
	out, err := exec.Command(analyze, append([]string{"verify"}, paths...)...).CombinedOutput()
	require.NoError(t, err, string(out))
	// verify exits 0 on a line it ignores, and says so.
	require.NotContains(t, string(out), "kiln-", string(out))

	// The service's commands are ones kiln has.
	for _, args := range [][]string{{"schedule", "--check", "../../examples/pipelines/nightly.hcl"}, {"build", "--help"}} {
		code, _, errOut := runKiln(t, args...)
		require.Equal(t, 0, code, errOut)
	}
}
