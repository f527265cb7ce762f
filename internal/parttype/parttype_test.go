package parttype

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestParse(t *testing.T) {
	cases := map[string]Type{
		"esp":                                  ESP,
		"ESP":                                  ESP,
		"root":                                 Root,
		"c12a7328-f81f-11d2-ba4b-00a0c93ec93b": ESP,
		"0FC63DAF-8483-4772-8E79-3D69D8477DE4": Linux,
		"0x82":                                 Swap,
		"0xef":                                 ESP,
		"0x83":                                 Linux,
		"0x8e":                                 {MBR: 0x8e},
		"11111111-2222-3333-4444-555555555555": {GUID: "11111111-2222-3333-4444-555555555555"},
	}
	for in, want := range cases {
		got, err := Parse(in)
		require.NoError(t, err, in)
		require.Equal(t, want, got, in)
	}
	for _, bad := range []string{"", "ext4", "0x", "0x00", "0x100", "1234"} {
		_, err := Parse(bad)
		require.Error(t, err, bad)
	}
}
