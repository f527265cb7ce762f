package components

import (
	"io/fs"
	"os/exec"
	"testing"

	"github.com/stretchr/testify/require"
)

// Quote survives a real shell, whatever the string holds.
func TestQuoteRoundTripsThroughSh(t *testing.T) {
	for _, s := range []string{"", "plain", "it's", `"double" $HOME $(id) ` + "`id`", "a\nb", "'''", `\`, "-rf /"} {
		out, err := exec.Command("/bin/sh", "-c", "printf %s "+Quote(s)).Output()
		require.NoError(t, err, s)
		require.Equal(t, s, string(out))
	}
}

func TestBuiltinIsEmbedded(t *testing.T) {
	names, err := fs.Glob(Builtin(), "*.hcl")
	require.NoError(t, err)
	require.GreaterOrEqual(t, len(names), 7)
}
