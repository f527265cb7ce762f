package main

import (
	"bufio"
	"encoding/json"
	"encoding/xml"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/kiln-build/kiln/catalog"
	"github.com/kiln-build/kiln/internal/qemu"
	"github.com/kiln-build/kiln/internal/sparse"
	"github.com/kiln-build/kiln/manifest"
	"github.com/kiln-build/kiln/platform"
	"github.com/stretchr/testify/require"
)

type junitSuite struct {
	Tests    int `xml:"tests,attr"`
	Failures int `xml:"failures,attr"`
	Skipped  int `xml:"skipped,attr"`
	Cases    []struct {
		Name    string `xml:"name,attr"`
		Failure *struct {
			Text string `xml:",chardata"`
		} `xml:"failure"`
		Skipped *struct{} `xml:"skipped"`
	} `xml:"testcase"`
}

func readJUnit(t *testing.T, path string) junitSuite {
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	var s junitSuite
	require.NoError(t, xml.Unmarshal(data, &s), string(data))
	return s
}

// A unit that fails at boot fails the base checks: the build exits 1, its
// tests.xml has the failing health/failed-units case, nothing is published
// (with --on-error=keep the booted disk is kept under .failed/).
// The same recipe with skip_health = ["failed-units"] passes and records
// the check as skipped.
func TestE2EFailedUnitFailsHealthUnlessSkipped(t *testing.T) {
	requireE2E(t)
	images, dir := t.TempDir(), t.TempDir()
	recipe := func(skip string) string {
		p := filepath.Join(dir, "unit-"+map[bool]string{true: "skip", false: "strict"}[skip != ""]+".hcl")
		require.NoError(t, os.WriteFile(p, []byte(`
image "failing-unit" {
  version = "1.0.0"
  `+skip+`
  base "debian" { suite = "bookworm" }
  boot { firmware = "uefi" }
  disk { size = "2GiB" }
  build "shell" "broken-unit" {
    inline = [
      "printf '[Unit]\\nDescription=always fails\\n[Service]\\nType=oneshot\\nExecStart=/bin/false\\n[Install]\\nWantedBy=multi-user.target\\n' > /etc/systemd/system/kiln-broken.service",
      "systemctl enable kiln-broken.service",
    ]
  }
  test "shell" "ok" { inline = ["true"] }
}
`), 0o644))
		return p
	}

	code, out, errOut := runKiln(t, "build", "--on-error=keep", "--images", images, "--cache", sharedCache(t), recipe(""))
	require.Equal(t, 1, code, "stdout:\n%s\nstderr:\n%s", out, errOut)
	require.Contains(t, errOut, "failed systemd units")
	require.Contains(t, errOut, "kiln-broken.service")
	builds, err := catalog.Builds(filepath.Join(images, "failing-unit", "1.0.0"))
	require.NoError(t, err)
	require.Empty(t, builds, "nothing is published")
	failed, _ := filepath.Glob(filepath.Join(images, ".failed", "failing-unit-1.0.0-*", "tests.xml"))
	require.Len(t, failed, 1)
	s := readJUnit(t, failed[0])
	require.Equal(t, 1, s.Failures)
	var sawUnit bool
	for _, c := range s.Cases {
		if c.Name == "health/failed-units" {
			sawUnit = true
			require.NotNil(t, c.Failure)
			require.Contains(t, c.Failure.Text, "kiln-broken.service")
		} else {
			require.Nil(t, c.Failure, c.Name)
		}
	}
	require.True(t, sawUnit)
	// --on-error=keep kept the disk the tests booted, outside the catalog.
	disk := filepath.Join(filepath.Dir(failed[0]), "disk.raw")
	require.FileExists(t, disk)
	require.Contains(t, errOut, "kiln run "+disk)

	m, path := buildExample(t, images, recipe(`skip_health = ["failed-units"]`))
	require.Equal(t, 1, m.Build)
	require.Empty(t, m.Health[0].Problems)
	require.Contains(t, m.Health[0].FailedUnits, "kiln-broken.service", "the unit really failed")
	for _, c := range m.Health[0].Checks {
		if c.Name == "failed-units" {
			require.Equal(t, manifest.Skipped, c.Status)
		} else {
			require.Equal(t, manifest.Pass, c.Status, c.Name)
		}
	}
	s = readJUnit(t, filepath.Join(path, "tests.xml"))
	require.Zero(t, s.Failures)
	require.Equal(t, 1, s.Skipped)
}

// kiln test smoke-tests the example as an artifact (name@version in the
// catalog) and as a qcow2 made from it by qemu-img, a foreign image with no
// manifest; a failing --test makes it exit 1. kiln run boots the image on a
// console that takes keystrokes. None of them changes the image.
func TestE2EKilnTestAndRun(t *testing.T) {
	requireE2E(t)
	images := t.TempDir()
	m, artifactDir := copyShared(t, images)
	raw := decompressed(t, filepath.Join(artifactDir, m.Outputs[0].File))
	qcow2 := filepath.Join(t.TempDir(), "foreign.qcow2")
	out, err := exec.Command("qemu-img", "convert", "-f", "raw", "-O", "qcow2", raw, qcow2).CombinedOutput()
	require.NoError(t, err, string(out))
	qcowSum, err := sparse.SHA256(qcow2)
	require.NoError(t, err)
	rawSum, err := sparse.SHA256(raw)
	require.NoError(t, err)

	scripts := t.TempDir()
	envTest := filepath.Join(scripts, "env-is-set")
	require.NoError(t, os.WriteFile(envTest, []byte("#!/bin/sh\nset -e\necho \"KILN_IMAGE=$KILN_IMAGE KILN_VERSION=$KILN_VERSION KILN_TEST=$KILN_TEST uid=$(id -u)\"\ntest \"$(id -u)\" = 0\ntest -n \"$KILN_IMAGE\"\n"), 0o755))
	// what the guest's CPU offers: the TCG levels differ in AVX
	cpuTest := filepath.Join(scripts, "cpu-flags")
	require.NoError(t, os.WriteFile(cpuTest, []byte("#!/bin/sh\nf=$(grep -m1 '^flags' /proc/cpuinfo)\nfor x in sse4_2 aes pclmulqdq avx avx2; do case \" $f \" in *\" $x \"*) echo \"$x=yes\";; *) echo \"$x=no\";; esac; done\n"), 0o755))
	// cpuFlags holds the guest's flags to its CPU level under TCG (under
	// KVM the guest has the host's CPU, whatever it has).
	cpuFlags := func(t *testing.T, h manifest.Health, out string, level platform.TCGCPU) {
		t.Helper()
		if h.Accelerator == "kvm" {
			require.Equal(t, "host", h.CPU)
			return
		}
		require.Equal(t, string(level), h.CPU)
		for _, f := range []string{"sse4_2=yes", "aes=yes", "pclmulqdq=yes"} {
			require.Contains(t, out, f, "x86-64-v2-aes and max both have it")
		}
		if level == platform.TCGCPUMax {
			require.Contains(t, out, "avx=yes")
		} else {
			require.Contains(t, out, "avx=no")
			require.Contains(t, out, "avx2=no")
		}
	}
	failing := filepath.Join(scripts, "fails")
	require.NoError(t, os.WriteFile(failing, []byte("echo 'this test fails on purpose' >&2\nexit 7\n"), 0o644))

	type result struct {
		Status    string
		Firmwares []platform.Boot
		Tests     []manifest.TestResult
		Health    []manifest.Health
		ExitCode  int `json:"exit_code"`
	}
	kilnTest := func(want int, args ...string) result {
		t.Helper()
		code, out, errOut := runKiln(t, append([]string{"test", "--json", "--images", images}, args...)...)
		require.Equal(t, want, code, "stdout:\n%s\nstderr:\n%s", out, errOut)
		var r result
		require.NoError(t, json.Unmarshal([]byte(out), &r), out)
		require.Equal(t, want, r.ExitCode)
		return r
	}

	t.Run("artifact", func(t *testing.T) {
		junit := filepath.Join(t.TempDir(), "tests.xml")
		r := kilnTest(0, "--junit", junit, "--test", envTest, "--test", cpuTest, "debian-minimal@1.x.x")
		require.Equal(t, "passed", r.Status)
		require.Equal(t, []platform.Boot{platform.BootUEFI}, r.Firmwares, "from the manifest")
		require.Len(t, r.Tests, 2)
		require.Equal(t, manifest.Pass, r.Tests[0].Status)
		level, err := qemu.DefaultTCGCPU()
		require.NoError(t, err)
		cpuFlags(t, r.Health[0], r.Tests[1].Output, level)
		require.Contains(t, r.Tests[0].Output, "KILN_IMAGE=debian-minimal KILN_VERSION=1.0.0 KILN_TEST=env-is-set uid=0")
		require.Len(t, r.Health, 1)
		require.True(t, r.Health[0].MultiUser)
		require.Empty(t, r.Health[0].Problems)
		vcpus, err := qemu.DefaultCPUs(r.Health[0].Accelerator)
		require.NoError(t, err)
		require.Equal(t, vcpus, r.Health[0].VCPUs, "the default vCPUs under %s on %d cores", r.Health[0].Accelerator, runtime.NumCPU())
		s := readJUnit(t, junit)
		require.Equal(t, 6, s.Tests)
		require.Zero(t, s.Failures)
		sum, err := sparse.SHA256(filepath.Join(artifactDir, m.Outputs[0].File))
		require.NoError(t, err)
		require.Equal(t, m.Outputs[0].SHA256, sum, "the artifact is unchanged")
	})

	t.Run("foreign-qcow2", func(t *testing.T) {
		// two vCPUs (multi-threaded under TCG) and, under TCG, every
		// feature QEMU emulates, whatever the defaults
		logs := t.TempDir()
		r := kilnTest(0, "--vcpus", "2", "--tcg-cpu", "max", "--logs", logs, "--test", envTest, "--test", cpuTest, qcow2)
		require.Equal(t, "passed", r.Status)
		cpuFlags(t, r.Health[0], r.Tests[1].Output, platform.TCGCPUMax)
		if _, err := os.Stat(filepath.Join(logs, "serial-uefi.int3.log")); err == nil {
			require.Equal(t, 1, r.Health[0].VCPUs, "booted again with one vCPU after QEMU's int3 race")
		} else {
			require.Equal(t, 2, r.Health[0].VCPUs)
		}
		require.Equal(t, []platform.Boot{platform.BootUEFI}, r.Firmwares, "detected from the ESP")
		require.Contains(t, r.Tests[0].Output, "KILN_IMAGE=foreign KILN_VERSION=0.0.0")
		require.True(t, r.Health[0].MultiUser)
		sum, err := sparse.SHA256(qcow2)
		require.NoError(t, err)
		require.Equal(t, qcowSum, sum, "the qcow2 is unchanged")
	})

	t.Run("failing-test", func(t *testing.T) {
		r := kilnTest(1, "--test", failing, raw)
		require.Equal(t, "failed", r.Status)
		require.Len(t, r.Tests, 1)
		require.Equal(t, manifest.Fail, r.Tests[0].Status)
		require.Equal(t, 7, r.Tests[0].ExitCode)
		require.Contains(t, r.Tests[0].Output, "this test fails on purpose")
		require.Empty(t, r.Health[0].Problems, "the base checks still pass")
		sum, err := sparse.SHA256(raw)
		require.NoError(t, err)
		require.Equal(t, rawSum, sum, "the raw image is unchanged")
	})

	t.Run("run", func(t *testing.T) {
		// kiln run in a child process, its stdin a pipe: wait for the login
		// prompt on the console, then quit QEMU with Ctrl-A x.
		cmd := exec.Command(os.Args[0], "-test.run=^TestKilnRunHelper$")
		cmd.Env = append(os.Environ(), "KILN_RUN_HELPER="+qcow2)
		stdin, err := cmd.StdinPipe()
		require.NoError(t, err)
		stdout, err := cmd.StdoutPipe()
		require.NoError(t, err)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		require.NoError(t, cmd.Start())
		defer func() { _ = cmd.Process.Kill() }()
		seen := make(chan string, 1)
		var console strings.Builder
		go func() {
			br := bufio.NewReader(stdout)
			buf := make([]byte, 4096)
			for {
				n, err := br.Read(buf)
				console.Write(buf[:n])
				if strings.Contains(console.String(), "login:") {
					seen <- "login"
					_, _ = io.Copy(io.Discard, br)
					return
				}
				if err != nil {
					seen <- "eof"
					return
				}
			}
		}()
		select {
		case what := <-seen:
			require.Equal(t, "login", what, "console:\n%s\nstderr:\n%s", console.String(), stderr.String())
		case <-time.After(10 * time.Minute):
			t.Fatalf("no login prompt within 10 minutes; console:\n%s", console.String())
		}
		_, err = stdin.Write([]byte{0x01, 'x'}) // Ctrl-A x: QEMU quits
		require.NoError(t, err)
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			require.NoError(t, err, "stderr:\n%s", stderr.String())
		case <-time.After(time.Minute):
			t.Fatal("QEMU did not quit on Ctrl-A x")
		}
		require.Contains(t, console.String(), "Linux version", "the kernel booted")
		sum, err := sparse.SHA256(qcow2)
		require.NoError(t, err)
		require.Equal(t, qcowSum, sum, "kiln run does not change the image")
	})
}

// TestKilnRunHelper is kiln run in a child process of TestE2EKilnTestAndRun
// (it needs its own stdin); it does nothing otherwise.
func TestKilnRunHelper(t *testing.T) {
	img := os.Getenv("KILN_RUN_HELPER")
	if img == "" {
		t.Skip("helper process for TestE2EKilnTestAndRun")
	}
	os.Exit(run([]string{"run", "--timeout", "15m", img}, os.Stdout, os.Stderr))
}

// A build step that replaces /etc with a link to / (or above the tree) makes
// the build fail with an error naming the path; nothing on the host changes.
// With --on-error=keep the tree is kept outside the catalog, with the
// command to get into it.
func TestE2EHostileEtcLinkFailsBuild(t *testing.T) {
	requireE2E(t)
	hostFiles := []string{"/fstab", "/machine-id", "/hostname", "/hosts", "/resolv.conf", "/policy-rc.d",
		"/etc/fstab", "/etc/machine-id", "/etc/hostname", "/etc/hosts", "/etc/resolv.conf"}
	snapshot := func() map[string]string {
		s := map[string]string{}
		for _, p := range hostFiles {
			if fi, err := os.Lstat(p); err == nil {
				s[p] = fi.ModTime().String() + fi.Mode().String()
			} else {
				s[p] = "absent"
			}
		}
		return s
	}
	for _, target := range []string{"/", "../../.."} {
		t.Run(target, func(t *testing.T) {
			images := t.TempDir()
			recipe := bookwormRecipe(t, "hostile", `
  build "shell" "etc-to-root" { inline = ["rm -rf /etc && ln -s `+target+` /etc"] }`)
			before := snapshot()
			code, out, errOut := runKiln(t, "build", "--on-error=keep", "--images", images, "--cache", sharedCache(t), recipe)
			require.Equal(t, 1, code, "stdout:\n%s\nstderr:\n%s", out, errOut)
			require.Contains(t, errOut, `refusing to write /etc/resolv.conf in the image tree: /etc is a symlink to "`+target+`"`)
			require.Equal(t, before, snapshot(), "nothing was written on the host")
			builds, _ := catalog.Builds(filepath.Join(images, "hostile", "1.0.0"))
			require.Empty(t, builds)
			kept, _ := filepath.Glob(filepath.Join(images, ".failed", "hostile-1.0.0-*", "tree"))
			require.Len(t, kept, 1, "--on-error=keep kept the tree")
			require.Contains(t, errOut, "chroot "+kept[0]+" /bin/bash")
			link, err := os.Readlink(filepath.Join(kept[0], "etc"))
			require.NoError(t, err)
			require.Equal(t, target, link)
		})
	}
}
