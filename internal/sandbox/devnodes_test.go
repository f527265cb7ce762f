package sandbox

import (
	"bytes"
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kiln-build/kiln/internal/testutil"
)

// The sandbox's device nodes are world-writable whatever the umask, as on
// a real system: apt runs its download methods as the _apt user, which
// writes to /dev/null.
func TestDeviceNodesAreWorldWritable(t *testing.T) {
	root := testutil.BusyboxTree(t)
	var out bytes.Buffer
	err := Run(context.Background(), Spec{Root: root, Args: []string{"/bin/sh", "-c", "ls -l /dev/null /dev/zero /dev/urandom"}, Env: DefaultEnv()}, nil, &out)
	require.NoError(t, err, out.String())
	require.Equal(t, 3, bytes.Count(out.Bytes(), []byte("crw-rw-rw-")), out.String())
}
