package semver

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Version
		err  string
	}{
		{"1.2.3", Version{1, 2, 3}, ""},
		{"0.0.0", Version{0, 0, 0}, ""},
		{"10.20.30", Version{10, 20, 30}, ""},
		{"1.2", Version{}, "write MAJOR.MINOR.PATCH"},
		{"1.02.3", Version{}, "leading zero"},
		{"1.2.3-rc1", Version{}, "not a number"},
		{"1..3", Version{}, "empty"},
		{"1.x.3", Version{}, "not a number"},
		{"1.2.9999999999", Version{}, "too large"},
	} {
		v, err := Parse(tc.in)
		if tc.err != "" {
			assert.ErrorContains(t, err, tc.err, tc.in)
			continue
		}
		require.NoError(t, err, tc.in)
		assert.Equal(t, tc.want, v, tc.in)
		assert.Equal(t, tc.in, v.String())
	}
}

func TestSelector(t *testing.T) {
	avail := []Version{{1, 0, 0}, {1, 2, 0}, {1, 2, 7}, {1, 10, 1}, {2, 0, 0}, {0, 9, 9}}
	for _, tc := range []struct {
		sel  string
		want string // newest match, "" for none
		err  string
	}{
		{"1.2.7", "1.2.7", ""},
		{"1.2.8", "", ""},
		{"1.2.x", "1.2.7", ""},
		{"1.x.x", "1.10.1", ""}, // numeric, not lexical, order
		{"x.x.x", "2.0.0", ""},
		{"X.X.X", "2.0.0", ""},
		{"0.x.x", "0.9.9", ""},
		{"3.x.x", "", ""},
		{"1.x.3", "", "every part to its right must be x too, such as 1.x.x"},
		{"x.2.x", "", "such as x.x.x"},
		{"1.x", "", "write MAJOR.MINOR.PATCH"},
		{"1.2.*", "", "not a number"},
	} {
		s, err := ParseSelector(tc.sel)
		if tc.err != "" {
			assert.ErrorContains(t, err, tc.err, tc.sel)
			continue
		}
		require.NoError(t, err, tc.sel)
		i := s.Newest(avail)
		if tc.want == "" {
			assert.Equal(t, -1, i, tc.sel)
			continue
		}
		require.GreaterOrEqual(t, i, 0, tc.sel)
		assert.Equal(t, tc.want, avail[i].String(), tc.sel)
	}
	s, err := ParseSelector("1.X.x")
	require.NoError(t, err)
	assert.Equal(t, "1.x.x", s.String())
	assert.False(t, s.Exact())
}
