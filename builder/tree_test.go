package builder

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/kiln-build/kiln/components"
	"github.com/kiln-build/kiln/internal/testutil"
	"github.com/stretchr/testify/require"
)

// A failing build step reports its name, exit code and last lines of
// output, and the tree is left as it was (no policy-rc.d, no step scripts).
func TestFailingStepReportsNameCodeAndTail(t *testing.T) {
	tree := testutil.BusyboxTree(t)
	var log bytes.Buffer
	steps := []components.Step{
		{Name: "ok", Script: []byte("echo first > /etc/first\n"), Timeout: time.Minute},
		{Name: "breaks", Script: []byte("echo 'line before failure'\necho 'the reason' >&2\nexit 42\n"), Timeout: time.Minute},
		{Name: "never", Script: []byte("echo never > /etc/never\n"), Timeout: time.Minute},
	}
	records, err := runSteps(context.Background(), tree, steps, &log, nil)
	var se *StepError
	require.True(t, errors.As(err, &se), "%v", err)
	require.Equal(t, "breaks", se.Step)
	require.Equal(t, 42, se.ExitCode)
	require.Contains(t, se.Tail, "the reason")
	require.Contains(t, err.Error(), `build step "breaks" failed with exit code 42`)
	require.Contains(t, err.Error(), "line before failure")
	require.Len(t, records, 1)
	require.FileExists(t, filepath.Join(tree, "etc/first"))
	require.NoFileExists(t, filepath.Join(tree, "etc/never"))
	require.NoFileExists(t, filepath.Join(tree, "usr/sbin/policy-rc.d"))
	require.NoDirExists(t, filepath.Join(tree, stepDir))
	require.Contains(t, log.String(), `==> build step "breaks"`)
}

func TestStepTimeout(t *testing.T) {
	tree := testutil.BusyboxTree(t)
	_, err := runSteps(context.Background(), tree, []components.Step{{Name: "slow", Script: []byte("sleep 30\n"), Timeout: 300 * time.Millisecond}}, &bytes.Buffer{}, nil)
	var se *StepError
	require.True(t, errors.As(err, &se), "%v", err)
	require.Contains(t, err.Error(), "timed out after 300ms")
}

// Generalising removes identity and secrets, through hostile symlinks too.
func TestGeneralise(t *testing.T) {
	tree := t.TempDir()
	for p, data := range map[string]string{
		"etc/machine-id": "0123456789abcdef\n", "etc/ssh/ssh_host_ed25519_key": "secret", "etc/ssh/ssh_host_ed25519_key.pub": "pub",
		"var/lib/apt/lists/x_Packages": "p", "var/cache/apt/archives/a.deb": "d", "root/.bash_history": "h",
		"var/log/syslog": "log", "tmp/junk": "j",
	} {
		require.NoError(t, os.MkdirAll(filepath.Join(tree, filepath.Dir(p)), 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(tree, p), []byte(data), 0o600))
	}
	outside := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(outside, "keep"), []byte("host"), 0o644))
	require.NoError(t, os.Symlink(outside, filepath.Join(tree, "home")))
	require.NoError(t, generalise(tree, "img"))
	id, _ := os.ReadFile(filepath.Join(tree, "etc/machine-id"))
	require.Equal(t, "uninitialized\n", string(id))
	for _, gone := range []string{"etc/ssh/ssh_host_ed25519_key", "etc/ssh/ssh_host_ed25519_key.pub", "var/lib/apt/lists/x_Packages",
		"var/cache/apt/archives/a.deb", "root/.bash_history", "tmp/junk"} {
		require.NoFileExists(t, filepath.Join(tree, gone))
	}
	logData, _ := os.ReadFile(filepath.Join(tree, "var/log/syslog"))
	require.Empty(t, logData)
	host, _ := os.ReadFile(filepath.Join(tree, "etc/hostname"))
	require.Equal(t, "img\n", string(host))
	require.FileExists(t, filepath.Join(outside, "keep"), "nothing outside the tree is touched")
}

// installUnit writes a unit and enables it as systemctl would, again and
// again.
func TestInstallUnitEnablesIt(t *testing.T) {
	tree := t.TempDir()
	for range 2 {
		require.NoError(t, installUnit(tree, "kiln-x.service", "[Unit]\n", "multi-user.target"))
	}
	data, err := os.ReadFile(filepath.Join(tree, "etc/systemd/system/kiln-x.service"))
	require.NoError(t, err)
	require.Equal(t, "[Unit]\n", string(data))
	target, err := os.Readlink(filepath.Join(tree, "etc/systemd/system/multi-user.target.wants/kiln-x.service"))
	require.NoError(t, err)
	require.Equal(t, "/etc/systemd/system/kiln-x.service", target)
}

// An image with ssl-cert ships no snakeoil key: each machine makes its own
// at first boot; without ssl-cert nothing is added.
func TestGeneraliseSnakeoil(t *testing.T) {
	tree := t.TempDir()
	for p, data := range map[string]string{
		"usr/sbin/make-ssl-cert": "#!/bin/sh\n", "etc/ssl/private/ssl-cert-snakeoil.key": "key", "etc/ssl/certs/ssl-cert-snakeoil.pem": "cert",
		"etc/ssl/certs/other.pem": "keep",
	} {
		require.NoError(t, os.MkdirAll(filepath.Join(tree, filepath.Dir(p)), 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(tree, p), []byte(data), 0o600))
	}
	require.NoError(t, generalise(tree, "img"))
	require.NoFileExists(t, filepath.Join(tree, "etc/ssl/private/ssl-cert-snakeoil.key"))
	require.NoFileExists(t, filepath.Join(tree, "etc/ssl/certs/ssl-cert-snakeoil.pem"))
	require.FileExists(t, filepath.Join(tree, "etc/ssl/certs/other.pem"))
	unit, err := os.ReadFile(filepath.Join(tree, "etc/systemd/system/kiln-snakeoil.service"))
	require.NoError(t, err)
	require.Contains(t, string(unit), "ExecStart=/usr/sbin/make-ssl-cert generate-default-snakeoil")
	target, err := os.Readlink(filepath.Join(tree, "etc/systemd/system/multi-user.target.wants/kiln-snakeoil.service"))
	require.NoError(t, err)
	require.Equal(t, "/etc/systemd/system/kiln-snakeoil.service", target)

	bare := t.TempDir()
	require.NoError(t, generalise(bare, "img"))
	require.NoFileExists(t, filepath.Join(bare, "etc/systemd/system/kiln-snakeoil.service"))
}
