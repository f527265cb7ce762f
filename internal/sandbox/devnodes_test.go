package sandbox

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// The sandbox's device nodes are world-writable whatever the umask, as on
// a real system: apt runs its download methods as the _apt user, which
// writes to /dev/null.
func TestDeviceNodesAreWorldWritable(t *testing.T) {
	_, out, err := sh(t, "ls -l /dev/null /dev/zero /dev/urandom")
	require.NoError(t, err, out)
	require.Equal(t, 3, strings.Count(out, "crw-rw-rw-"), out)
}
