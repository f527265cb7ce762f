package main

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/kiln-build/kiln/manifest"
	"github.com/kiln-build/kiln/platform"
	"github.com/stretchr/testify/require"
)

// The web server example builds from components (built-in apt-packages and
// serial-console, the recipe-local static-site), its component tests pass
// inside the booted guest (one fetches the page over HTTP), and the manifest
// records every component resolved.
func TestE2EWebServerComponents(t *testing.T) {
	requireE2E(t)
	m, dir := buildExample(t, t.TempDir(), "../../examples/web-server.hcl")

	require.Len(t, m.Components, 3)
	byName := map[string]int{}
	for i, c := range m.Components {
		byName[c.Name] = i
		require.Regexp(t, regexp.MustCompile(`^[0-9a-f]{64}$`), c.SHA256, c.Name)
		require.Equal(t, "1.0.0", c.Version, c.Name)
	}
	apt := m.Components[byName["apt-packages"]]
	require.Equal(t, "1.x.x", apt.Constraint)
	require.Equal(t, "builtin", apt.Source)
	require.Equal(t, []any{"nginx", "curl"}, apt.Parameters["packages"])
	site := m.Components[byName["static-site"]]
	require.Equal(t, "1.0.x", site.Constraint)
	abs, _ := filepath.Abs("../../examples/components/static-site.hcl")
	require.Equal(t, abs, site.Source)
	require.EqualValues(t, 8080, site.Parameters["port"])
	require.Equal(t, "x.x.x", m.Components[byName["serial-console"]].Constraint)

	tests := map[string]manifest.Status{}
	for _, tr := range m.Tests {
		tests[tr.Name] = tr.Status
		require.Equal(t, manifest.Pass, tr.Status, "%s: %s", tr.Name, tr.Output)
	}
	for _, name := range []string{"apt-packages/installed", "static-site/serves-page", "serial-console/running", "nginx-running"} {
		require.Contains(t, tests, name)
	}
	var steps []string
	for _, s := range m.BuildSteps {
		steps = append(steps, s.Name)
		require.False(t, s.Failed, s.Name)
	}
	require.Contains(t, steps, "static-site/page")
	require.Contains(t, steps, "static-site/config", "validate steps run and are recorded")

	// The page is in the published image, owned by www-data, with its mode.
	img := decompressed(t, filepath.Join(dir, m.Outputs[0].File))
	var root uint64
	for _, p := range m.Disk.Partitions {
		if p.Mount == "/" {
			root = p.Start
		}
	}
	spec := img + "?offset=" + strconv.FormatUint(root, 10)
	out, err := exec.Command("debugfs", "-R", "cat /var/www/html/index.html", spec).Output()
	require.NoError(t, err)
	require.Contains(t, string(out), "Hello from a Kiln-built web server")
	out, err = exec.Command("debugfs", "-R", "stat /var/www/html/index.html", spec).Output()
	require.NoError(t, err)
	require.Regexp(t, `Mode:\s+0644`, string(out))
	require.NotRegexp(t, `User:\s+0 `, string(out), "owned by www-data, not root")
	out, err = exec.Command("debugfs", "-R", "cat /etc/nginx/sites-available/default", spec).Output()
	require.NoError(t, err)
	require.Contains(t, string(out), "listen 8080 default_server;", "the template was rendered with the parameters")
}

// Every built-in component builds, validates and passes its own tests in
// the booted guest, together; test-phase actions other than shell and the
// on_failure policy work in the guest too. The published image (it has
// openssh-server and cloud-init) is then booted once more for the debug
// loop: kiln run --ssh --cloud-init, checked over kiln ssh, which also
// tests cloud-init-nocloud with a real seed (debugLoopBoot).
func TestE2EBuiltinComponents(t *testing.T) {
	requireE2E(t)
	recipe := bookwormRecipe(t, "builtins", `
  # every feature TCG emulates, as for software built for AVX2 (x86-64-v3)
  boot {
    firmware = "uefi"
    tcg_cpu  = "max"
  }

  component "apt-packages" {
    version    = "1.x.x"
    parameters = { packages = ["less"] }
  }
  component "users" {
    version    = "1.0.x"
    parameters = { name = "deploy", groups = ["adm"], sudo = true, authorized_keys = ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKiln deploy@example"] }
  }
  component "sshd-hardening" {
    version    = "1.x.x"
    parameters = { allow_users = ["deploy", "root"] }
  }
  component "system-settings" {
    version    = "x.x.x"
    parameters = { hostname = "kiln-box", timezone = "Europe/Paris", locale = "en_US.UTF-8" }
  }
  component "cloud-init-nocloud" {
    version = "1.x.x"
  }
  component "qemu-guest-agent" {
    version = "1.x.x"
  }
  component "serial-console" {
    version = "1.x.x"
  }

  test "file" "guest-file" {
    destination = "/tmp/kiln-guest-file"
    content     = "placed in the guest\n"
  }
  test "shell" "guest-file-there" {
    inline = ["grep -qx 'placed in the guest' /tmp/kiln-guest-file"]
  }
  test "shell" "avx2-under-tcg" {
    inline = ["[ \"$(systemd-detect-virt)\" = kvm ] || grep -qw avx2 /proc/cpuinfo"]
  }
  test "shell" "optional" {
    inline     = ["echo 'allowed to fail'", "exit 3"]
    on_failure = "continue"
  }
  output { formats = ["raw"] }`)
	m, dir := buildExample(t, t.TempDir(), recipe)
	logStages(t, m)
	require.Len(t, m.Components, 7)
	names := map[string]bool{}
	for _, tr := range m.Tests {
		names[tr.Name] = true
		require.Equal(t, manifest.Pass, tr.Status, "%s: %s", tr.Name, tr.Output)
		if tr.Name == "optional" {
			require.Contains(t, tr.Output, "on_failure = continue")
		}
	}
	for _, n := range []string{"apt-packages/installed", "users/user", "sshd-hardening/effective", "system-settings/settings",
		"cloud-init-nocloud/ran", "qemu-guest-agent/binary", "serial-console/running", "guest-file-there", "avx2-under-tcg"} {
		require.True(t, names[n], "test %s ran", n)
	}
	require.Equal(t, platform.TCGCPUMax, m.Boot.TCGCPU, "the recipe's boot.tcg_cpu, for kiln test")
	if m.Health[0].Accelerator == "kvm" {
		require.Equal(t, "host", m.Health[0].CPU)
	} else {
		require.Equal(t, "max", m.Health[0].CPU)
	}
	t.Run("run-ssh-cloud-init", func(t *testing.T) { debugLoopBoot(t, dir, filepath.Join(dir, m.Outputs[0].File)) })
}

// logStages logs a build's stage timings, to see where a slow e2e test
// spends its time.
func logStages(t *testing.T, m *manifest.Manifest) {
	var b strings.Builder
	for _, st := range m.Stages {
		fmt.Fprintf(&b, " %s %.0fs", st.Stage, st.Seconds)
	}
	t.Logf("stages:%s", b.String())
}
