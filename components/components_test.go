package components

import (
	"io/fs"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestBuiltinIsEmbedded(t *testing.T) {
	names, err := fs.Glob(Builtin(), "*.hcl")
	require.NoError(t, err)
	require.GreaterOrEqual(t, len(names), 7)
}
