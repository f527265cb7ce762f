package didyoumean

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestClosest(t *testing.T) {
	names := []string{"build", "validate", "test", "run", "images"}
	require.Equal(t, "build", Closest("bulid", names))
	require.Equal(t, "images", Closest("image", names))
	require.Equal(t, "test", Closest("tset", names))
	require.Equal(t, "", Closest("frobnicate", names), "nothing within two edits")
	require.Equal(t, "run", Closest("run", names))
}

func TestDistance(t *testing.T) {
	require.Equal(t, 0, Distance("", ""))
	require.Equal(t, 3, Distance("", "abc"))
	require.Equal(t, 2, Distance("suite", "siute"), "a swap is two edits")
	require.Equal(t, 1, Distance("grün", "grun"), "runes, not bytes")
}
