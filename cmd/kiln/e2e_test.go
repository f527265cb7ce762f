package main

import (
	"encoding/json"
	"encoding/xml"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kiln-build/kiln/catalog"
	"github.com/kiln-build/kiln/internal/sparse"
	"github.com/kiln-build/kiln/internal/testutil"
	"github.com/kiln-build/kiln/manifest"
	"github.com/kiln-build/kiln/platform"
	"github.com/stretchr/testify/require"
)

// End-to-end tests build real images from examples/, boot them in QEMU and
// run their tests in the guest. They need root, the network to the Debian
// archive and the host packages from scripts/install-deps.sh. They run when
// KILN_E2E=1 (make test) and fail instead of skipping when KILN_REQUIRE_QEMU=1.
//
// They run in parallel with each other (go test -parallel, 2 by default on a
// 2-core machine: one guest boots while another build writes its disk), so
// each uses its own catalog and temporary directories; the base cache is
// shared and locked. A test that changes the process's environment
// (t.Setenv) calls requireE2ESerial instead and runs before the others.
func requireE2E(t *testing.T) {
	t.Helper()
	requireE2ESerial(t)
	t.Parallel()
}

// requireE2ESerial is requireE2E for a test that must not run beside others.
func requireE2ESerial(t *testing.T) {
	t.Helper()
	if !e2eEnabled() {
		t.Skip("end-to-end build; set KILN_E2E=1 (make test does)")
	}
	testutil.RequireRoot(t)
	testutil.Require(t, "mmdebstrap", "mke2fs", "e2fsck", "debugfs", "qemu-system-x86_64", "qemu-img", "sgdisk", "sfdisk", "fsck.vfat", "unshare", "zstd", "xz")
}

// e2eEnabled says whether the end-to-end tests run.
func e2eEnabled() bool {
	return !testing.Short() && (os.Getenv("KILN_E2E") == "1" || testutil.Strict())
}

func readManifest(t *testing.T, dir string) *manifest.Manifest {
	data, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
	require.NoError(t, err)
	var m manifest.Manifest
	require.NoError(t, json.Unmarshal(data, &m))
	return &m
}

// The example builds, boots, passes its tests, and a second build reuses
// the base. Without SOURCE_DATE_EPOCH, the two builds (one from a fresh
// bootstrap, one from the cache, minutes apart) write the same raw disk
// and the same SBOMs, byte for byte: the source date comes from the
// archive's InRelease file. The manifest has exactly the keys of the
// golden one.
func TestE2EExampleBuildsBootsAndCaches(t *testing.T) {
	requireE2ESerial(t)                       // t.Setenv below
	images, cache := t.TempDir(), t.TempDir() // a fresh cache: the first build must bootstrap
	t.Setenv("SOURCE_DATE_EPOCH", "")         // unset: reproducible by default

	code, out, errOut := runKiln(t, "build", "--json", "--images", images, "--cache", cache, "../../examples/debian-minimal.hcl")
	require.Equal(t, 0, code, "stdout:\n%s\nstderr:\n%s", out, errOut)
	var res struct {
		Status, Path string
		Build        int
	}
	require.NoError(t, json.Unmarshal([]byte(out), &res))
	require.Equal(t, "published", res.Status)
	require.Equal(t, filepath.Join(images, "debian-minimal", "1.0.0", "1"), res.Path)

	m := readManifest(t, res.Path)
	requireGoldenKeys(t, res.Path)
	require.Equal(t, 1, m.SchemaVersion)
	require.Equal(t, 1, m.Build)
	require.False(t, m.Base.CacheHit)
	require.NotEmpty(t, m.Base.ReleaseSHA256)
	require.NotEmpty(t, m.Kernel)
	require.NotEmpty(t, m.Packages)
	require.Len(t, m.Health, 1)
	require.Equal(t, platform.BootUEFI, m.Health[0].Firmware)
	require.True(t, m.Health[0].MultiUser, "multi-user.target reached")
	require.Empty(t, m.Health[0].FailedUnits)
	require.Empty(t, m.Health[0].Problems)
	require.Len(t, m.Tests, 2)
	for _, tr := range m.Tests {
		require.Equal(t, manifest.Pass, tr.Status, "%s: %s", tr.Name, tr.Output)
		require.Equal(t, platform.BootUEFI, tr.Firmware)
	}
	for _, f := range []string{"serial.log", "build.log", "tests.xml"} {
		require.FileExists(t, filepath.Join(res.Path, f))
	}
	var junit struct {
		Tests    int `xml:"tests,attr"`
		Failures int `xml:"failures,attr"`
	}
	data, _ := os.ReadFile(filepath.Join(res.Path, "tests.xml"))
	require.NoError(t, xml.Unmarshal(data, &junit))
	require.Equal(t, 4+2, junit.Tests) // 4 health checks, 2 tests
	require.Zero(t, junit.Failures)

	// The manifest's checksums match the files: a zstd-compressed raw image
	// (whose content hashes to the uncompressed sha256) and a qcow2.
	require.Len(t, m.Outputs, 2)
	raw, qcow := m.Outputs[0], m.Outputs[1]
	require.Equal(t, "raw", raw.Format)
	require.Equal(t, "zstd", raw.Compression)
	require.Equal(t, "debian-minimal.raw.zst", raw.File)
	require.Equal(t, "qcow2", qcow.Format)
	for _, o := range m.Outputs {
		sum, err := sparse.SHA256(filepath.Join(res.Path, o.File))
		require.NoError(t, err)
		require.Equal(t, o.SHA256, sum, o.File)
		fi, err := os.Stat(filepath.Join(res.Path, o.File))
		require.NoError(t, err)
		require.Equal(t, fi.Size(), o.Size, o.File)
		require.NotEmpty(t, o.Checks, "%s was verified against its platforms", o.File)
	}
	require.NoFileExists(t, filepath.Join(res.Path, "debian-minimal.raw"), "only the compressed raw image is published")
	img := decompressed(t, filepath.Join(res.Path, raw.File))
	sum, err := sparse.SHA256(img)
	require.NoError(t, err)
	require.Equal(t, raw.UncompressedSHA256, sum)
	cmp, err := exec.Command("qemu-img", "compare", "-f", "raw", "-F", "qcow2", img, filepath.Join(res.Path, qcow.File)).CombinedOutput()
	require.NoError(t, err, string(cmp))

	// The disk is clean for independent tools.
	checkDisk(t, img, m)

	// The source date is the archive's, and debugfs finds it on the file
	// the build step wrote.
	require.Equal(t, manifest.SourceDateDebian, m.SourceDate.From)
	require.Contains(t, m.SourceDate.Detail, "/dists/trixie/InRelease")
	require.True(t, m.SourceDate.Time.Before(m.Created), "the archive published the base before the build")
	var root manifest.Partition
	for _, p := range m.Disk.Partitions {
		if p.Mount == "/" {
			root = p
		}
	}
	stat, err := exec.Command("debugfs", "-R", "stat /etc/motd", img+"?offset="+strconv.FormatUint(root.Start, 10)).CombinedOutput()
	require.NoError(t, err, string(stat))
	require.Contains(t, string(stat), fmt.Sprintf("mtime: 0x%08x", m.SourceDate.Epoch), "/etc/motd carries the source date")

	// A second build hits the base cache: its base stage takes under 1/5 of the first's.
	code, out, errOut = runKiln(t, "build", "--json", "--images", images, "--cache", cache, "../../examples/debian-minimal.hcl")
	require.Equal(t, 0, code, "stdout:\n%s\nstderr:\n%s", out, errOut)
	require.NoError(t, json.Unmarshal([]byte(out), &res))
	require.Equal(t, 2, res.Build)
	m2 := readManifest(t, res.Path)
	require.True(t, m2.Base.CacheHit)
	first, second := m.StageSeconds("base"), m2.StageSeconds("base")
	t.Logf("base stage: first %.1fs, second %.1fs", first, second)
	// The cache hit is the manifest's word; the times only show it saved
	// work (the e2e tests run two at a time, so no tighter ratio holds).
	require.Less(t, second, first)
	require.GreaterOrEqual(t, m2.Created.Sub(m.Created), time.Minute, "the builds are a minute apart or more")
	require.Equal(t, m.SourceDate, m2.SourceDate)
	require.Equal(t, raw.UncompressedSHA256, m2.Outputs[0].UncompressedSHA256, "two builds of one recipe write the same raw disk, without SOURCE_DATE_EPOCH")
	for _, f := range []string{"sbom.spdx.json", "sbom.cdx.json"} {
		a, err := os.ReadFile(filepath.Join(filepath.Dir(res.Path), "1", f))
		require.NoError(t, err)
		b, err := os.ReadFile(filepath.Join(res.Path, f))
		require.NoError(t, err)
		require.Equal(t, a, b, "%s is the same bytes for the same tree", f)
	}
	// Build 1 is untouched.
	sum, err = sparse.SHA256(filepath.Join(filepath.Dir(res.Path), "1", raw.File))
	require.NoError(t, err)
	require.Equal(t, raw.SHA256, sum)
}

// checkDisk runs the independent checkers on a published image: the
// partition table (sgdisk -v for GPT, sfdisk --verify for MBR), fsck.vfat on
// every FAT partition and e2fsck on every ext4 one.
func checkDisk(t *testing.T, img string, m *manifest.Manifest) {
	if m.Boot.PartitionTable == "mbr" {
		out, err := exec.Command("sfdisk", "--verify", img).CombinedOutput()
		require.NoError(t, err, string(out))
		require.Contains(t, string(out), "No errors detected")
	} else {
		out, err := exec.Command("sgdisk", "-v", img).CombinedOutput()
		require.NoError(t, err, string(out))
		require.Contains(t, string(out), "No problems found")
	}
	for _, p := range m.Disk.Partitions {
		switch p.Filesystem {
		case "ext4":
			out, err := exec.Command("e2fsck", "-fn", img+"?offset="+strconv.FormatUint(p.Start, 10)).CombinedOutput()
			require.NoError(t, err, string(out))
		case "vfat":
			part := filepath.Join(t.TempDir(), "esp.img")
			f, _ := os.Open(img)
			o, _ := os.Create(part)
			buf := make([]byte, 1<<20)
			for off := int64(0); off < int64(p.Size); off += int64(len(buf)) {
				n, _ := f.ReadAt(buf, int64(p.Start)+off)
				_, _ = o.WriteAt(buf[:n], off)
			}
			f.Close()
			o.Close()
			out, err := exec.Command("fsck.vfat", "-n", part).CombinedOutput()
			require.NoError(t, err, string(out))
		}
	}
}

// A failing guest test exits 1, keeps its logs, and publishes nothing.
func TestE2EFailingTestPublishesNothing(t *testing.T) {
	requireE2E(t)
	images := t.TempDir()
	recipe := bookwormRecipe(t, "failing", `
  disk { size = "2GiB" }
  test "shell" "passes" { inline = ["true"] }
  test "shell" "fails" {
    inline = [
      "echo 'expected failure output'",
      # A kernel problem that only the kernel's log holds (debug level: not
      # printed on the console), as a quiet console would hide a real one.
      "echo '<7>Oops: kiln e2e marker, in the kernel log only' >/dev/kmsg",
      "exit 3",
    ]
  }`)
	code, out, errOut := runKiln(t, "build", "--images", images, "--cache", sharedCache(t), recipe)
	require.Equal(t, 1, code, "stdout:\n%s\nstderr:\n%s", out, errOut)
	require.Contains(t, errOut, `test "fails" failed (exit code 3)`)
	for _, fw := range []string{"uefi", "bios"} {
		require.Regexp(t, fw+`: kernel problems on the console or in the kernel's log:\n.*Oops: kiln e2e marker`, errOut, "the kernel-errors check reads the kernel's log")
	}
	kept := requireNothingPublished(t, images, "failing")
	data, _ := os.ReadFile(filepath.Join(kept, "tests.xml"))
	require.Contains(t, string(data), "expected failure output")
	// The recipe's boot mode is the default, hybrid: it booted twice, and a
	// console log of each boot is kept.
	for _, fw := range []string{"uefi", "bios"} {
		console, err := os.ReadFile(filepath.Join(kept, "serial-"+fw+".log"))
		require.NoError(t, err, "the %s boot's console log is kept", fw)
		require.Contains(t, string(console), "Linux version", "the %s console shows the kernel booting", fw)
	}
}

// requireNothingPublished checks that a failed build of NAME 1.0.0
// published nothing and left no staging directory, and returns the one
// directory its logs were kept in.
func requireNothingPublished(t *testing.T, images, name string) string {
	t.Helper()
	builds, err := catalog.Builds(filepath.Join(images, name, "1.0.0"))
	require.NoError(t, err)
	require.Empty(t, builds, "nothing is published")
	staging, _ := os.ReadDir(filepath.Join(images, ".staging"))
	require.Empty(t, staging, "no half artifact is left")
	kept, _ := filepath.Glob(filepath.Join(images, ".failed", name+"-1.0.0-*"))
	require.Len(t, kept, 1, "the logs are kept once")
	return kept[0]
}

// bookwormRecipe writes a recipe for image NAME, version 1.0.0, on a
// Debian 12 base (the suite these tests build besides the examples'
// trixie), with body inside the image block, and returns its path.
func bookwormRecipe(t *testing.T, name, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name+".hcl")
	text := "image \"" + name + "\" {\n  version = \"1.0.0\"\n  base \"debian\" { suite = \"bookworm\" }\n" + strings.TrimPrefix(body, "\n") + "\n}\n"
	require.NoError(t, os.WriteFile(p, []byte(text), 0o644))
	return p
}

// decompressed returns a raw copy of a compressed image, via zstd -d / xz -d.
func decompressed(t *testing.T, path string) string {
	out := filepath.Join(t.TempDir(), "disk.raw")
	cmd := exec.Command("zstd", "-d", "-q", "-o", out, path) // zstd writes holes for zeros
	if strings.HasSuffix(path, ".xz") {
		f, err := os.Create(out)
		require.NoError(t, err)
		defer f.Close()
		cmd = exec.Command("xz", "-d", "-c", path)
		cmd.Stdout = f
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	require.NoError(t, cmd.Run(), stderr.String())
	return out
}

// sharedCache is a base cache shared by tests that do not measure caching.
func sharedCache(t *testing.T) string {
	if v := os.Getenv("KILN_TEST_CACHE"); v != "" {
		return v
	}
	return filepath.Join(os.TempDir(), "kiln-test-cache")
}
