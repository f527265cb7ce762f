package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kiln-build/kiln/boottest"
	"github.com/kiln-build/kiln/internal/parttype"
	"github.com/kiln-build/kiln/internal/testutil"
	"github.com/kiln-build/kiln/manifest"
	"github.com/kiln-build/kiln/platform"
)

// Secure Boot end to end. Three boots under TCG: the distro image (its
// build's test stage, with a TPM) and the custom image (its test stage)
// boot fully; the custom image under the Microsoft store is refused within
// seconds. TestE2EBootMatrix adds a fourth, short one: the unsigned uefi-gpt
// image refused under the Microsoft store.

func requireSecureBootTools(t *testing.T) {
	t.Helper()
	testutil.Require(t, "sbverify", "mcopy", "mdir", "openssl", "swtpm", "swtpm_setup")
}

// The distro image boots under enforcing firmware with Microsoft's and
// Debian's keys, its kernel says Secure Boot is on, a TPM 2.0 answers in
// the guest, the manifest's boot chain is what sbverify reads from the ESP,
// kiln verify calls it ready for GCP, and a SIGKILLed kiln run leaves no
// swtpm or QEMU behind.
func TestE2ESecureBootDistro(t *testing.T) {
	requireE2E(t)
	requireSecureBootTools(t)
	m, dir := buildExample(t, t.TempDir(), "../../examples/secure-boot.hcl")
	t.Logf("stages: %+v; boot %.0fs", m.Stages, m.Health[0].BootSeconds)
	require.Equal(t, platform.SecureBootDistro, m.Boot.SecureBoot)
	require.True(t, m.Boot.TPM)
	requirePassedUnderSecureBoot(t, m)
	console, err := os.ReadFile(filepath.Join(dir, "serial.log"))
	require.NoError(t, err)
	require.Contains(t, string(console), "secureboot: Secure boot enabled", "the kernel's console")
	for _, tr := range m.Tests {
		switch tr.Name {
		case "tpm":
			require.Regexp(t, `(?i)PCR 0 = 0x[0-9a-f]{64}`, tr.Output)
		case "kernel-locked-down":
			require.Contains(t, tr.Output, "Microsoft Corporation UEFI CA 2011", "the firmware's db is Microsoft's")
		}
	}

	img := filepath.Join(dir, m.Outputs[0].File)
	esp := espFiles(t, img, m)
	require.Equal(t, []string{"BOOTX64.EFI", "grubx64.efi", "mmx64.efi"}, esp.names("EFI/BOOT"), "no fbx64.efi beside shim")
	require.Contains(t, string(esp.read("EFI/debian/grub.cfg")), "configfile $prefix/grub.cfg")
	chain := chainByPath(m)
	require.Len(t, chain, 4, "three EFI binaries and the kernel")
	checkChainAgainstSbverify(t, esp, chain)
	require.Equal(t, "/C=US/ST=Washington/L=Redmond/O=Microsoft Corporation/CN=Microsoft Corporation UEFI CA 2011", chain["EFI/BOOT/BOOTX64.EFI"].Signers[0].Issuer)
	require.Contains(t, chain["EFI/BOOT/grubx64.efi"].Signers[0].Subject, "Debian Secure Boot Signer")
	kernel := chain["/boot/vmlinuz-"+m.Kernel]
	require.Contains(t, kernel.Signers[0].Subject, "Debian Secure Boot Signer")
	require.Equal(t, "/CN=Debian Secure Boot CA", kernel.Signers[0].Issuer)

	code, out, _ := runKiln(t, "verify", "--target", "gcp", "--secure-boot", img)
	require.Equal(t, 0, code, out)
	require.Contains(t, out, "Secure Boot: ready for GCP Shielded VM")

	t.Run("killed-kiln-run-leaves-no-swtpm", func(t *testing.T) { checkKilledRunLeavesNothing(t, img) })
}

// The custom image, signed with Debian's snakeoil key (decrypted here),
// boots under OVMF_VARS_4M.snakeoil.fd, which has that certificate in db,
// and is refused at once under the Microsoft store.
func TestE2ESecureBootCustom(t *testing.T) {
	requireE2E(t)
	requireSecureBootTools(t)
	fw, err := boottest.SecureBootFirmware("")
	require.NoError(t, err)
	vars := filepath.Join(filepath.Dir(fw.VarsTemplate), "OVMF_VARS_4M.snakeoil.fd")
	const encrypted, cert = "/usr/share/ovmf/PkKek-1-snakeoil.key", "/usr/share/ovmf/PkKek-1-snakeoil.pem"
	for _, f := range []string{vars, encrypted, cert} {
		require.FileExists(t, f, "Debian's ovmf package ships the snakeoil key, certificate and variable store")
	}
	key := filepath.Join(t.TempDir(), "snakeoil.key")
	testutil.Run(t, "openssl", "pkey", "-in", encrypted, "-passin", "pass:snakeoil", "-out", key)

	// The passphrase-protected original is refused before any build, with the position.
	code, _, stderr := runKiln(t, "validate", "-var", "key="+encrypted, "-var", "certificate="+cert, "-var", "vars="+vars, "../../examples/secure-boot-custom.hcl")
	require.Equal(t, 2, code)
	require.Regexp(t, `secure-boot-custom.hcl:\d+:\d+: error: Passphrase-protected key`, stderr)

	images := t.TempDir()
	m, dir := buildExample(t, images, "../../examples/secure-boot-custom.hcl", "key="+key, "certificate="+cert, "vars="+vars)
	t.Logf("stages: %+v; boot %.0fs", m.Stages, m.Health[0].BootSeconds)
	require.Equal(t, platform.SecureBootCustom, m.Boot.SecureBoot)
	requirePassedUnderSecureBoot(t, m)
	console, err := os.ReadFile(filepath.Join(dir, "serial.log"))
	require.NoError(t, err)
	// GRUB wraps its line at the console's 80 columns, so only its start
	// is compared.
	require.Contains(t, string(console), "Kiln: booting /boot/vmlinuz-"+m.Kernel, "Kiln's signed GRUB ran")
	require.Contains(t, string(console), "secureboot: Secure boot enabled")

	img := filepath.Join(dir, m.Outputs[0].File)
	esp := espFiles(t, img, m)
	require.Equal(t, []string{"BOOTX64.EFI"}, esp.names("EFI/BOOT"), "no shim")
	chain := chainByPath(m)
	require.Len(t, chain, 2, "GRUB and the kernel")
	checkChainAgainstSbverify(t, esp, chain)
	snakeoil := "/C=US/ST=Colorado/L=Fort Collins/O=SnakeOil"
	require.Equal(t, []manifest.Signer{{Subject: snakeoil, Issuer: snakeoil}}, chain["EFI/BOOT/BOOTX64.EFI"].Signers)
	require.Equal(t, []manifest.Signer{{Subject: snakeoil, Issuer: snakeoil}}, chain["/boot/vmlinuz-"+m.Kernel].Signers, "the kernel carries only the user's signature")
	boot := filepath.Join(t.TempDir(), "BOOTX64.EFI")
	require.NoError(t, os.WriteFile(boot, esp.read("EFI/BOOT/BOOTX64.EFI"), 0o644))
	testutil.Run(t, "sbverify", "--cert", cert, boot)

	// Under the Microsoft store the firmware refuses it, and kiln test says so at once.
	checkRefusedUnderSecureBoot(t, m.Name+"@1.0.0", "--images", images)
}

// requirePassedUnderSecureBoot checks the one UEFI boot of a build: every
// test and health check passed, the secure-boot check among them.
func requirePassedUnderSecureBoot(t *testing.T, m *manifest.Manifest) {
	t.Helper()
	require.Len(t, m.Health, 1)
	h := m.Health[0]
	require.Equal(t, platform.BootUEFI, h.Firmware)
	require.Empty(t, h.Problems)
	var checks []string
	for _, c := range h.Checks {
		checks = append(checks, c.Name+"="+string(c.Status))
	}
	require.Contains(t, checks, "secure-boot=pass", "the guest's SecureBoot EFI variable is 1")
	require.NotEmpty(t, m.Tests)
	for _, tr := range m.Tests {
		require.Equal(t, manifest.Pass, tr.Status, "%s: %s", tr.Name, tr.Output)
	}
}

// checkRefusedUnderSecureBoot runs kiln test --secure-boot (Microsoft's
// keys) on an image they do not sign: the firmware refuses the boot loader
// and the boot ends at once instead of waiting out its budget.
func checkRefusedUnderSecureBoot(t *testing.T, image string, args ...string) {
	t.Helper()
	start := time.Now()
	code, out, stderr := runKiln(t, append(append([]string{"test", "--json", "--secure-boot"}, args...), image)...)
	took := time.Since(start)
	t.Logf("refused under Secure Boot in %s", took.Round(time.Second))
	require.Equal(t, 1, code, "stdout:\n%s\nstderr:\n%s", out, stderr)
	var r struct {
		Health []manifest.Health
	}
	require.NoError(t, json.Unmarshal([]byte(out), &r), out)
	require.Len(t, r.Health, 1)
	require.NotEmpty(t, r.Health[0].Problems)
	require.Contains(t, r.Health[0].Problems[0], "the firmware refused to start the boot loader under Secure Boot")
	require.Contains(t, r.Health[0].Problems[0], "Access Denied")
	require.Less(t, took, 3*time.Minute, "stopped at the refusal, not at the boot budget")
}

// esp reads files from an image's EFI system partition with mtools.
type esp struct {
	t   *testing.T
	img string
}

func espFiles(t *testing.T, img string, m *manifest.Manifest) esp {
	for _, p := range m.Disk.Partitions {
		if strings.EqualFold(p.TypeGUID, parttype.ESP.GUID) {
			return esp{t, img + "@@" + strconv.FormatUint(p.Start, 10)}
		}
	}
	t.Fatal("no ESP in the manifest")
	return esp{}
}

func (e esp) names(dir string) []string {
	var names []string
	for _, l := range strings.Fields(testutil.Run(e.t, "mdir", "-b", "-i", e.img, "::/"+dir)) {
		names = append(names, filepath.Base(l))
	}
	return names
}

func (e esp) read(path string) []byte {
	out, err := exec.Command("mtype", "-i", e.img, "::/"+path).Output()
	require.NoError(e.t, err, path)
	return out
}

func chainByPath(m *manifest.Manifest) map[string]manifest.BootFile {
	out := map[string]manifest.BootFile{}
	for _, f := range m.Boot.Chain {
		out[f.Path] = f
	}
	return out
}

// checkChainAgainstSbverify: each EFI binary of the manifest's chain is on
// the ESP with that sha256, and sbverify lists the same signature issuers.
func checkChainAgainstSbverify(t *testing.T, e esp, chain map[string]manifest.BootFile) {
	t.Helper()
	dir := t.TempDir()
	for path, f := range chain {
		if !strings.HasPrefix(path, "EFI/") {
			continue
		}
		local := filepath.Join(dir, filepath.Base(path))
		require.NoError(t, os.WriteFile(local, e.read(path), 0o644))
		require.Equal(t, f.SHA256, testutil.FileSHA256(t, local), path)
		out := testutil.Run(t, "sbverify", "--list", local)
		issuers := regexp.MustCompile(`(?m)^image signature issuers:\n - (.*)$`).FindAllStringSubmatch(out, -1)
		require.Len(t, issuers, len(f.Signers), "%s:\n%s", path, out)
		for i, s := range f.Signers {
			require.Equal(t, issuers[i][1], s.Issuer, path)
		}
	}
}

// checkKilledRunLeavesNothing SIGKILLs a kiln run --secure-boot --tpm
// while its VM runs: swtpm and QEMU must go with it.
func checkKilledRunLeavesNothing(t *testing.T, img string) {
	tmp := t.TempDir() // kiln's scratch, the TPM's state and socket are under it
	var running time.Time
	testutil.KillChild(t, "TestKilnRunTPMChild", []string{runTPMImageEnv + "=" + img, "TMPDIR=" + tmp}, 5*time.Minute, func() bool {
		procs := strings.Join(processesWith(tmp), "\n")
		if !strings.Contains(procs, "swtpm socket") || !strings.Contains(procs, "qemu-system") || !strings.Contains(procs, "tpm-tis") {
			return false
		}
		if running.IsZero() {
			running = time.Now()
		}
		return time.Since(running) > 3*time.Second // the VM runs: the firmware is up
	})
	require.Eventually(t, func() bool { return len(processesWith(tmp)) == 0 }, 15*time.Second, 200*time.Millisecond,
		"processes left after kiln was killed: %v", processesWith(tmp))
}

const runTPMImageEnv = "KILN_TEST_RUN_TPM_IMAGE"

// TestKilnRunTPMChild is kiln run --secure-boot --tpm in a child process of
// TestE2ESecureBootDistro, which SIGKILLs it while the VM runs.
func TestKilnRunTPMChild(t *testing.T) {
	img := testutil.ChildEnv(t, runTPMImageEnv)
	os.Exit(run([]string{"run", "--secure-boot", "--tpm", "--timeout", "10m", img}, os.Stdout, os.Stderr))
}

// processesWith lists live processes whose command line contains marker.
func processesWith(marker string) []string {
	var out []string
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || len(cmdline) == 0 { // gone, or a zombie
			continue
		}
		line := strings.ReplaceAll(string(bytes.TrimRight(cmdline, "\x00")), "\x00", " ")
		if strings.Contains(line, marker) && e.Name() != strconv.Itoa(os.Getpid()) {
			out = append(out, e.Name()+": "+line)
		}
	}
	return out
}
