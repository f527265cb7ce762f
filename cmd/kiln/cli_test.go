package main

import (
	"bytes"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kiln-build/kiln/boottest"
	"github.com/kiln-build/kiln/manifest"
	"github.com/kiln-build/kiln/platform"
)

func runKiln(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestHelpAndUnknownCommand(t *testing.T) {
	code, out, _ := runKiln(t, "--help")
	require.Equal(t, 0, code)
	for _, c := range commands() {
		require.Contains(t, out, c.name)
	}
	require.Contains(t, out, "Exit codes")

	code, _, errOut := runKiln(t, "frobnicate")
	require.Equal(t, 2, code)
	require.Contains(t, errOut, `unknown command "frobnicate"`)

	code, _, errOut = runKiln(t, "build", "--help")
	require.Equal(t, 0, code)
	require.Contains(t, errOut, "-var-file")
}

func TestVersion(t *testing.T) {
	code, out, _ := runKiln(t, "version", "--json")
	require.Equal(t, 0, code)
	var v map[string]string
	require.NoError(t, json.Unmarshal([]byte(out), &v))
	require.Equal(t, Version, v["version"])
	require.NotEmpty(t, v["recipe_format"])
}

func TestValidateExample(t *testing.T) {
	code, out, errOut := runKiln(t, "validate", "../../examples/debian-minimal.hcl")
	require.Equal(t, 0, code, errOut)
	require.Contains(t, out, "valid (image debian-minimal 1.0.0)")
}

// Every example recipe parses; examples never rot.
func TestAllExamplesValidate(t *testing.T) {
	files, _ := filepath.Glob("../../examples/*.hcl")
	require.NotEmpty(t, files)
	disk := filepath.Join(t.TempDir(), "disk.vmdk") // file-base.hcl's required variables
	require.NoError(t, os.WriteFile(disk, []byte("disk"), 0o644))
	keys, err := filepath.Abs("../../recipes/testdata/keys") // test keys, for secure-boot-custom.hcl's variables
	require.NoError(t, err)
	vars := map[string][]string{
		"file-base.hcl": {"-var", "disk=" + disk, "-var", "sha256=" + strings.Repeat("0", 64)},
		"secure-boot-custom.hcl": {"-var", "key=" + filepath.Join(keys, "db.key"), "-var", "certificate=" + filepath.Join(keys, "db.pem"),
			"-var", "vars=" + filepath.Join(keys, "vars.fd")},
	}
	for _, f := range files {
		code, _, errOut := runKiln(t, append([]string{"validate", f}, vars[filepath.Base(f)]...)...)
		require.Equal(t, 0, code, "%s: %s", f, errOut)
	}
}

func TestValidateReportsEveryProblemWithPosition(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.hcl")
	require.NoError(t, os.WriteFile(bad, []byte(`image "x" {
  version = "1.0"
  base "debian" { suite = "bookworm" }
  disk { sise = "2GiB" }
}
`), 0o644))
	code, out, errOut := runKiln(t, "validate", bad)
	require.Equal(t, 2, code)
	require.Empty(t, out)
	require.Contains(t, errOut, bad+":2:")
	require.Contains(t, errOut, bad+":4:")
	require.NotContains(t, errOut, "goroutine", "never a stack trace")

	code, out, _ = runKiln(t, "validate", "--json", bad)
	require.Equal(t, 2, code)
	var v struct {
		Status      string
		Diagnostics []map[string]any
	}
	require.NoError(t, json.Unmarshal([]byte(out), &v))
	require.Equal(t, "invalid", v.Status)
	require.GreaterOrEqual(t, len(v.Diagnostics), 2)
}

func TestFlagsAfterPositional(t *testing.T) {
	code, _, errOut := runKiln(t, "validate", "../../examples/debian-minimal.hcl", "-var", "suite=trixie")
	require.Equal(t, 0, code, errOut)
	code, _, errOut = runKiln(t, "validate", "../../examples/debian-minimal.hcl", "-var", "nosuch=1")
	require.Equal(t, 2, code)
	require.True(t, strings.Contains(errOut, "nosuch"), errOut)
	code, _, _ = runKiln(t, "validate")
	require.Equal(t, 2, code)
	code, _, _ = runKiln(t, "build", "--no-such-flag", "x.hcl")
	require.Equal(t, 2, code)
}

// "--" ends the flags wherever it is: what follows is positional, even
// when it looks like a flag.
func TestDoubleDashEndsFlags(t *testing.T) {
	for _, args := range [][]string{
		{"--json", "--", "a", "-b"},
		{"--", "a", "-b"},
		{"a", "--json", "--", "-b"},
	} {
		fs := newFlagSet("x", "x", io.Discard)
		asJSON := fs.Bool("json", false, "")
		pos, err := parseInterleaved(fs, args)
		require.NoError(t, err, "%v", args)
		require.Equal(t, []string{"a", "-b"}, pos, "%v", args)
		require.Equal(t, args[0] == "--json" || args[1] == "--json", *asJSON)
	}
}

// --secure-boot-vars must name a file; --tpm needs swtpm on the host.
func TestDeviceFlags(t *testing.T) {
	img := gptDisk(t, true)
	for _, cmd := range []string{"test", "run"} {
		code, _, stderr := runKiln(t, cmd, "--secure-boot-vars", filepath.Join(t.TempDir(), "none.fd"), img)
		require.Equal(t, 2, code, cmd)
		require.Contains(t, stderr, "--secure-boot-vars", cmd)
	}
	for _, cmd := range []string{"test", "run"} {
		_, out, stderr := runKiln(t, cmd, "--help")
		for _, flag := range []string{"-secure-boot", "-secure-boot-vars", "-tpm"} {
			require.Contains(t, out+stderr, flag, "kiln %s --help", cmd)
		}
	}
	var help strings.Builder
	fs := newFlagSet("test", testUsage, &help)
	d := deviceFlags(fs)
	require.NoError(t, fs.Parse([]string{"--tpm", "--secure-boot"}))
	got, err := d.get("")
	require.NoError(t, err)
	require.True(t, got.SecureBoot)
	require.True(t, got.TPM)
	require.Equal(t, []string{"swtpm", "swtpm_setup"}, got.tools())
	fs = newFlagSet("test", testUsage, &help)
	d = deviceFlags(fs)
	vars := filepath.Join(t.TempDir(), "vars.fd")
	require.NoError(t, os.WriteFile(vars, []byte("x"), 0o644))
	require.NoError(t, fs.Parse([]string{"--secure-boot-vars", vars}))
	got, err = d.get(platform.BootUEFI)
	require.NoError(t, err)
	require.True(t, got.SecureBoot, "the variable store implies Secure Boot")
	require.Equal(t, vars, got.SecureBootVars)
	require.Empty(t, got.tools())
	_, err = d.get(platform.BootBIOS)
	require.ErrorContains(t, err, "UEFI feature")
	code, _, stderr := runKiln(t, "test", "--firmware", "bios", "--secure-boot", img)
	require.Equal(t, 2, code)
	require.Contains(t, stderr, "need --firmware uefi")
}

// --tcg-cpu takes a TCG CPU level; an artifact's manifest gives the
// recipe's when the flag is not set.
func TestTCGCPUFlag(t *testing.T) {
	var help strings.Builder
	fs := newFlagSet("test", testUsage, &help)
	d := deviceFlags(fs)
	require.NoError(t, fs.Parse([]string{"--tcg-cpu", "max"}))
	got, err := d.get("")
	require.NoError(t, err)
	require.Equal(t, platform.TCGCPUMax, got.TCGCPU)
	got.fromManifest(&boottest.Target{Manifest: &manifest.Manifest{Boot: manifest.Boot{TCGCPU: platform.TCGCPUv2AES}}})
	require.Equal(t, platform.TCGCPUMax, got.TCGCPU, "the flag wins over the recipe")

	fs = newFlagSet("test", testUsage, &help)
	d = deviceFlags(fs)
	require.NoError(t, fs.Parse(nil))
	got, err = d.get("")
	require.NoError(t, err)
	got.fromManifest(&boottest.Target{})
	require.Empty(t, got.TCGCPU, "a foreign image: KILN_TCG_CPU or the default")
	got.fromManifest(&boottest.Target{Manifest: &manifest.Manifest{Boot: manifest.Boot{TCGCPU: platform.TCGCPUMax}}})
	require.Equal(t, platform.TCGCPUMax, got.TCGCPU, "the recipe's choice")

	for _, cmd := range []string{"test", "run"} {
		code, _, stderr := runKiln(t, cmd, "--tcg-cpu", "host", "x.raw")
		require.Equal(t, 2, code, cmd)
		require.Contains(t, stderr, `--tcg-cpu: unknown TCG CPU level "host": want x86-64-v2-aes or max`, cmd)
	}
}
