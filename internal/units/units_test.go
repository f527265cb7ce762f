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
		{"512b", 512},
		{"4KiB", 4096},
		{"4kib", 4096},
		{"256MiB", 256 << 20},
		{"256 MiB", 256 << 20},
		{"  2GiB  ", 2 << 30},
		{"2 GIB", 2 << 30},
		{"1TiB", 1 << 40},
		{"1PiB", 1 << 50},
		{"15EiB", 15 << 60},
		{"10MB", 10_000_000},
		{"1GB", 1_000_000_000},
		{"1gb", 1_000_000_000},
		{"2kB", 2000},
		{"1TB", 1_000_000_000_000},
		{"1.5GiB", 3 << 29},
		{"0.5KiB", 512},
		{"1.25MB", 1_250_000},
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
	for _, s := range []string{"512", "512B", "4KiB", "256MiB", "2 GiB", "1TiB", "10MB", "1GB", "1.5GiB", "-1", "", "1e9", "16EiB", "0.01KiB"} {
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
