package platform

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestBoots(t *testing.T) {
	require.Equal(t, []Boot{BootUEFI}, UEFI.Boots())
	require.Equal(t, []Boot{BootBIOS}, BIOS.Boots())
	require.Equal(t, []Boot{BootUEFI, BootBIOS}, Hybrid.Boots(), "hybrid boots twice, UEFI first")
	require.Empty(t, Firmware("arm").Boots())
	for _, f := range Firmwares {
		require.True(t, f.Valid())
		for _, b := range f.Boots() {
			require.True(t, b.Firmware().Valid())
		}
	}
	require.False(t, Firmware("efi").Valid())
	require.True(t, GPT.Valid() && MBR.Valid())
	require.False(t, Table("dos").Valid())
}

func TestParseBoot(t *testing.T) {
	b, err := ParseBoot("bios")
	require.NoError(t, err)
	require.Equal(t, BootBIOS, b)
	_, err = ParseBoot("hybrid")
	require.ErrorContains(t, err, "use uefi or bios", "a VM boots under one firmware")
}
