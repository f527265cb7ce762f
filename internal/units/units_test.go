package units

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestParseSize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want uint64
	}{
		{"0", 0},
		{"512", 512},
		{"512B", 512},
		{"4KiB", 4096},
		{"256MiB", 256 << 20},
		{"  2GiB  ", 2 << 30},
		{"1TiB", 1 << 40},
		{"1PiB", 1 << 50},
		{"15EiB", 15 << 60},
		{"1.5GiB", 3 << 29},
		{"0.5KiB", 512},
		{"007MiB", 7 << 20},
		{"18446744073709551615", 1<<64 - 1},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseSize(tc.in)
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
		})
	}
}

func TestParseSizeErrors(t *testing.T) {
	for _, tc := range []struct {
		in         string
		outOfRange bool
	}{
		{"", false},
		{"   ", false},
		{"-1", false},
		{"-1GiB", false},
		{"GiB", false},
		{"two GiB", false},
		{"2 gigs", false},
		{"2G", false},
		{"10MB", false},
		{"1gb", false},
		{"2 GiB", false},
		{"4kib", false},
		{"512b", false},
		{"2GiBs", false},
		{"2 G iB", false},
		{"1.5B", false},
		{"1.", false},
		{".5GiB", false},
		{"1..5GiB", false},
		{"1.2.3GiB", false},
		{"+2GiB", false},
		{"0x10", false},
		{"2GiB extra", false},
		{"1e3", false},
		{"18446744073709551616", true},
		{"16EiB", true},
		{"99999999999999999999TiB", true},
		{"1234567890123456789012345678901234567890123", true},
	} {
		t.Run(tc.in, func(t *testing.T) {
			_, err := ParseSize(tc.in)
			require.Error(t, err)
			if tc.outOfRange {
				require.True(t, errors.Is(err, ErrRange), "%v", err)
			} else {
				require.True(t, errors.Is(err, ErrSyntax), "%v", err)
			}
		})
	}
}

// Shorthands, other spellings and decimal units are refused with what to
// write instead.
func TestParseSizeHints(t *testing.T) {
	for in, hint := range map[string]string{
		"2G":      `write "2GiB"`,
		"2g":      `write "2GiB"`,
		"2Gi":     `write "2GiB"`,
		"2gib":    `write "2GiB"`,
		"2GIB":    `write "2GiB"`,
		"128mb":   `write "128MiB" (powers of 1024), or "123MiB", the smallest whole number of MiB that holds 128 decimal MB`,
		"10GB":    `GB is a decimal unit (powers of 1000), which Kiln does not accept because disks are laid out in whole MiB; write "10GiB"`,
		"1.5 GiB": `no space between the number and the unit; write "1.5GiB"`,
		"512 B":   `no space between the number and the unit; write "512"`,
		"4 bytes": `write "4"`,
		"1.5TB":   `write "1.5TiB"`,
		"2 gigs":  `unknown unit "gigs"; use B, KiB, MiB, GiB, TiB, PiB or EiB`,
	} {
		_, err := ParseSize(in)
		require.Error(t, err, in)
		require.True(t, errors.Is(err, ErrSyntax), "%q: %v", in, err)
		require.Contains(t, err.Error(), hint, in)
	}
}

func TestFormatSize(t *testing.T) {
	for _, tc := range []struct {
		in   uint64
		want string
	}{
		{0, "0B"},
		{1, "1B"},
		{1000, "1000B"},
		{1023, "1023B"},
		{1024, "1KiB"},
		{1536, "1.5KiB"},
		{256 << 20, "256MiB"},
		{2 << 30, "2GiB"},
		{3 << 29, "1.5GiB"},
		{5 << 28, "1.25GiB"},
		{9 << 27, "1152MiB"}, // 1.125GiB needs three decimals
		{2<<30 + 1, "2147483649B"},
		{1 << 40, "1TiB"},
		{1 << 60, "1EiB"},
		{1<<64 - 1, "18446744073709551615B"},
	} {
		require.Equal(t, tc.want, FormatSize(tc.in), "FormatSize(%d)", tc.in)
		back, err := ParseSize(tc.want)
		require.NoError(t, err)
		require.Equal(t, tc.in, back, "round trip of %q", tc.want)
	}
}

func FuzzParseSize(f *testing.F) {
	for _, s := range []string{"512", "512B", "4KiB", "256MiB", "2 GiB", "1TiB", "10MB", "2G", "1.5GiB", "-1", "", "1e9", "16EiB", "0.01KiB"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := ParseSize(s)
		if err != nil {
			if !errors.Is(err, ErrSyntax) && !errors.Is(err, ErrRange) {
				t.Fatalf("ParseSize(%q): unclassified error %v", s, err)
			}
			return
		}
		f := FormatSize(n)
		back, err := ParseSize(f)
		if err != nil || back != n {
			t.Fatalf("ParseSize(%q) = %d, FormatSize = %q, parsed back as %d, %v", s, n, f, back, err)
		}
	})
}

func TestApproxSize(t *testing.T) {
	for n, want := range map[uint64]string{0: "0 B", 1023: "1023 B", 1024: "1.0 KiB", 3481: "3.4 KiB", 1610612736: "1.5 GiB", 5 << 20: "5.0 MiB"} {
		if got := ApproxSize(n); got != want {
			t.Errorf("ApproxSize(%d) = %q, want %q", n, got, want)
		}
	}
}
