package units

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseAge(t *testing.T) {
	for in, want := range map[string]time.Duration{
		"90d": 90 * Day, "1d": Day, "2w": 14 * Day, "36h": 36 * time.Hour, "1h30m": 90 * time.Minute, " 5d ": 5 * Day,
	} {
		got, err := ParseAge(in)
		require.NoError(t, err, in)
		assert.Equal(t, want, got, in)
	}
	for _, in := range []string{"", "d", "0d", "-1d", "1.5d", "01d", "90 days", "0s", "-5m", "1y"} {
		_, err := ParseAge(in)
		assert.Error(t, err, in)
	}
	assert.Equal(t, "90d", FormatAge(90*Day))
	assert.Equal(t, "36h0m0s", FormatAge(36*time.Hour))
	back, err := ParseAge(FormatAge(36 * time.Hour))
	require.NoError(t, err)
	assert.Equal(t, 36*time.Hour, back)
}
