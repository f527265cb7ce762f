package builder

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kiln-build/kiln/internal/testutil"
	"github.com/kiln-build/kiln/manifest"
	"github.com/kiln-build/kiln/oci"
	"github.com/kiln-build/kiln/recipes"
)

// A distribute target may be a registry: the published build is pushed
// there (tags VERSION-BUILD and VERSION), next to a copy into another
// catalog, and pulled back it is the same build.
func TestDistributeToRegistryAndCatalog(t *testing.T) {
	reg := testutil.StartRegistry(t, "", "")
	root, mirror := t.TempDir(), t.TempDir()
	dir := filepath.Join(root, "web", "1.0.0", "4")
	require.NoError(t, os.MkdirAll(dir, 0o755))
	disk := []byte("a disk image")
	require.NoError(t, os.WriteFile(filepath.Join(dir, "web.raw"), disk, 0o644))
	sum := sha256.Sum256(disk)
	m := &manifest.Manifest{SchemaVersion: manifest.SchemaVersion, Name: "web", Version: "1.0.0", Build: 4, Created: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
		Outputs: []manifest.Output{{File: "web.raw", Format: "raw", SHA256: hex.EncodeToString(sum[:]), Size: int64(len(disk))}}}
	require.NoError(t, m.Write(dir))

	copies, err := distribute(context.Background(), dir, []recipes.Distribution{
		{Name: "registry", Images: "oci://" + reg.Addr + "/images/web"},
		{Name: "mirror", Images: mirror},
	}, "test", io.Discard)
	require.NoError(t, err)
	require.Len(t, copies, 2)
	require.Regexp(t, `^`+reg.Addr+`/images/web:1\.0\.0-4@sha256:[0-9a-f]{64}$`, copies[0])
	require.Equal(t, filepath.Join(mirror, "web", "1.0.0", "4"), copies[1])

	pulled, err := oci.Pull(context.Background(), oci.Ref{Registry: reg.Addr, Repository: "images/web", Tag: "1.0.0"}, t.TempDir(), oci.Options{}, time.Now())
	require.NoError(t, err)
	require.Equal(t, "web/1.0.0/4", pulled.Entry.ID())
	require.Equal(t, testutil.FileSHA256(t, filepath.Join(dir, "manifest.json")), testutil.FileSHA256(t, filepath.Join(pulled.Entry.Dir, "manifest.json")))
}
