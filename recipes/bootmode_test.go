package recipes

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
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

// The boot mode table decides what can be built: only UEFI on GPT today.
func TestBootModes(t *testing.T) {
	for _, tc := range []struct {
		firmware, table string
		want            []string
	}{
		{"uefi", "gpt", []string{}},
		{"bios", "gpt", []string{"5: Boot mode not supported yet"}},
		{"hybrid", "gpt", []string{"5: Boot mode not supported yet"}},
		{"uefi", "mbr", []string{"9: Boot mode not supported yet"}},
		{"bios", "mbr", []string{"5: Boot mode not supported yet", "9: Boot mode not supported yet"}},
	} {
		_, _, diags := Parse("r.hcl", bootRecipe(tc.firmware, tc.table, "2GiB"), LoadOptions{})
		require.Equal(t, tc.want, summaries(diags), "%s on %s", tc.firmware, tc.table)
		for _, d := range diags {
			require.Contains(t, d.Detail, "only UEFI firmware on a GPT disk is implemented so far")
		}
	}
}

// Enabling a boot mode is one entry in bootModes, whose check then decides.
func TestBootModeTableEnablesModes(t *testing.T) {
	saved := bootModes
	t.Cleanup(func() { bootModes = saved })
	bootModes = map[bootMode]bootModeCheck{
		{"uefi", "gpt"}:   layoutNeeds{esp: true, overhead: gptOverhead}.check,
		{"bios", "mbr"}:   layoutNeeds{overhead: mbrOverhead}.check,
		{"hybrid", "gpt"}: layoutNeeds{esp: true, biosBoot: true, overhead: gptOverhead}.check,
	}
	for _, tc := range []struct {
		firmware, table, size string
		want                  []string
	}{
		{"bios", "mbr", "256MiB", []string{}},
		{"hybrid", "gpt", "2GiB", []string{}},
		{"uefi", "gpt", "322MiB", []string{}}, // 2MiB of tables + 256MiB ESP + 64MiB root
		{"uefi", "gpt", "321MiB", []string{"8: Disk too small for its partitions"}},
		{"hybrid", "gpt", "323MiB", []string{}}, // and a 1MiB BIOS boot partition
		{"hybrid", "gpt", "322MiB", []string{"8: Disk too small for its partitions"}},
		{"bios", "gpt", "2GiB", []string{"5: Boot mode not supported yet"}}, // BIOS is known, GPT is known, the pair is not
		{"uefi", "mbr", "2GiB", []string{"5: Boot mode not supported yet"}},
	} {
		r, _, diags := Parse("r.hcl", bootRecipe(tc.firmware, tc.table, tc.size), LoadOptions{})
		require.Equal(t, tc.want, summaries(diags), "%s on %s, %s", tc.firmware, tc.table, tc.size)
		if len(tc.want) == 0 {
			require.Equal(t, tc.firmware, r.Image.Boot.Firmware)
			require.Equal(t, tc.table, r.Image.Disk.Table)
		}
	}
}
