package recipes

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kiln-build/kiln/platform"
)

func bootRecipe(firmware, table, size string) []byte {
	return []byte(fmt.Sprintf(`image "boot" {
  version = "1.0.0"
  base "debian" { suite = "bookworm" }
  boot {
    firmware = %q
  }
  disk {
    size  = %q
    table = %q
  }
}
`, firmware, size, table))
}

func summaries(diags Diagnostics) []string {
	out := []string{}
	for _, d := range diags {
		out = append(out, fmt.Sprintf("%d: %s", d.Subject.Start.Line, d.Summary))
	}
	return out
}

// Every firmware works with every table; the default layout's size is checked.
func TestBootModes(t *testing.T) {
	for _, tc := range []struct {
		firmware, table, size string
		want                  []string
	}{
		{"uefi", "gpt", "2GiB", []string{}},
		{"bios", "gpt", "2GiB", []string{}},
		{"hybrid", "gpt", "2GiB", []string{}},
		{"uefi", "mbr", "2GiB", []string{}},
		{"bios", "mbr", "2GiB", []string{}},
		{"hybrid", "mbr", "2GiB", []string{}},
		{"bios", "mbr", "256MiB", []string{}},
		{"uefi", "gpt", "322MiB", []string{}}, // 2MiB of tables + 256MiB ESP + 64MiB root
		{"uefi", "gpt", "321MiB", []string{"8: Disk too small for its partitions"}},
		{"hybrid", "gpt", "323MiB", []string{}}, // and a 1MiB BIOS boot partition
		{"hybrid", "gpt", "322MiB", []string{"8: Disk too small for its partitions"}},
		{"uefi", "mbr", "321MiB", []string{}}, // MBR needs no backup table
	} {
		r, _, diags := Parse("r.hcl", bootRecipe(tc.firmware, tc.table, tc.size), LoadOptions{Library: testLibrary})
		require.Equal(t, tc.want, summaries(diags), "%s on %s, %s", tc.firmware, tc.table, tc.size)
		if len(tc.want) == 0 {
			require.Equal(t, platform.Firmware(tc.firmware), r.Image.Boot.Firmware)
			require.Equal(t, platform.Table(tc.table), r.Image.Disk.Table)
		}
	}
}

func TestDefaultBootModeIsHybridGPT(t *testing.T) {
	r, _, diags := Parse("r.hcl", []byte(`image "x" {
  version = "1.0.0"
  base "debian" { suite = "bookworm" }
}
`), LoadOptions{Library: testLibrary})
	require.False(t, diags.HasErrors(), "%v", diags)
	require.Equal(t, platform.Hybrid, r.Image.Boot.Firmware)
	require.Equal(t, platform.GPT, r.Image.Disk.Table)
	require.True(t, r.Image.Disk.Grow)
	require.Empty(t, r.Image.Disk.Partitions)
}

// secure_boot and tpm decode; custom key paths resolve against the recipe's
// directory and are checked before any build.
func TestSecureBootArguments(t *testing.T) {
	r, _, diags := Parse("r.hcl", []byte(`image "x" {
  version = "1.0.0"
  base "debian" { suite = "trixie" }
  boot {
    firmware    = "uefi"
    secure_boot = "distro"
    tpm         = true
  }
}
`), LoadOptions{Library: testLibrary})
	require.False(t, diags.HasErrors(), "%v", diags)
	require.Equal(t, platform.SecureBootDistro, r.Image.Boot.SecureBoot)
	require.True(t, r.Image.Boot.TPM)
	require.Empty(t, r.Image.Boot.SecureBootKey)

	r, _, diags = Parse("r.hcl", []byte(`image "x" {
  version = "1.0.0"
  base "debian" { suite = "trixie" }
}
`), LoadOptions{Library: testLibrary})
	require.False(t, diags.HasErrors(), "%v", diags)
	require.Equal(t, platform.SecureBootOff, r.Image.Boot.SecureBoot, "off by default")
	require.False(t, r.Image.Boot.TPM)

	r, _, diags = Load("testdata/secureboot/custom.hcl", LoadOptions{Library: testLibrary})
	require.False(t, diags.HasErrors(), "%v", diags)
	dir, err := filepath.Abs("testdata/keys")
	require.NoError(t, err)
	b := r.Image.Boot
	require.Equal(t, platform.SecureBootCustom, b.SecureBoot)
	require.Equal(t, platform.Hybrid, b.Firmware, "hybrid: the BIOS path stays as it is")
	require.Equal(t, filepath.Join(dir, "db.key"), b.SecureBootKey)
	require.Equal(t, filepath.Join(dir, "db.pem"), b.SecureBootCertificate)
	require.Equal(t, filepath.Join(dir, "vars.fd"), b.SecureBootVars)
}

// The diagnostics name the file, line and column, and say what to do.
func TestSecureBootDiagnosticsRendered(t *testing.T) {
	_, files, diags := Load("testdata/errors/secure_boot_bad_keys.hcl", LoadOptions{Library: testLibrary})
	var b strings.Builder
	WriteDiagnostics(&b, files, diags, false)
	out := b.String()
	require.Contains(t, out, "testdata/errors/secure_boot_bad_keys.hcl:7:31: error: Passphrase-protected key")
	require.Contains(t, out, "openssl pkey -in")
	require.Contains(t, out, "3 errors")
}

// tcg_cpu names a TCG CPU level; anything else is an error at its value
// that lists the levels.
func TestTCGCPU(t *testing.T) {
	recipe := func(level string) []byte {
		return []byte(fmt.Sprintf(`image "x" {
  version = "1.0.0"
  base "debian" { suite = "trixie" }
  boot {
    firmware = "uefi"
    tcg_cpu  = %q
  }
}
`, level))
	}
	r, _, diags := Parse("r.hcl", []byte(`image "x" {
  version = "1.0.0"
  base "debian" { suite = "trixie" }
}
`), LoadOptions{Library: testLibrary})
	require.False(t, diags.HasErrors(), "%v", diags)
	require.Empty(t, r.Image.Boot.TCGCPU, "unset: KILN_TCG_CPU or the default decides at boot")
	for _, l := range platform.TCGCPUs {
		r, _, diags := Parse("r.hcl", recipe(string(l)), LoadOptions{Library: testLibrary})
		require.False(t, diags.HasErrors(), "%v", diags)
		require.Equal(t, l, r.Image.Boot.TCGCPU)
	}
	for _, bad := range []string{"host", "qemu64", "x86-64-v3", ""} {
		_, _, diags := Parse("r.hcl", recipe(bad), LoadOptions{Library: testLibrary})
		require.Equal(t, []string{"6: Invalid TCG CPU"}, summaries(diags), bad)
		require.Equal(t, 16, diags[0].Subject.Start.Column)
		require.Contains(t, diags[0].Detail, `Use "x86-64-v2-aes" or "max"`)
	}
}
