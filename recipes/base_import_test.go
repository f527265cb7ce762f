package recipes

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestImportBases(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "disk.vmdk"), []byte("x"), 0o644))
	sum := strings.Repeat("AB", 32)

	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, []byte(body), 0o644))
		return p
	}
	r, _, diags := Load(write("file.hcl", `
image "child" {
  version = "1.0.0"
  base "file" {
    path   = "disk.vmdk"
    sha256 = "`+sum+`"
  }
}
`), LoadOptions{Library: testLibrary})
	require.False(t, diags.HasErrors(), diags.Error())
	require.Equal(t, BaseFile, r.Image.Base.Type)
	require.Equal(t, filepath.Join(dir, "disk.vmdk"), r.Image.Base.Path, "relative to the recipe's directory")
	require.Equal(t, strings.ToLower(sum), r.Image.Base.SHA256)

	r, _, diags = Load(write("image.hcl", `
image "child" {
  version = "1.0.0"
  base "image" { name = "debian-base" }
}
`), LoadOptions{Library: testLibrary})
	require.False(t, diags.HasErrors(), diags.Error())
	b := r.Image.Base
	require.Equal(t, BaseImage, b.Type)
	require.Equal(t, "debian-base", b.Name)
	require.Equal(t, "x.x.x", b.VersionSelector)
	require.False(t, b.IncludeDeprecated)

	r, _, diags = Load(write("image2.hcl", `
image "child" {
  version = "1.0.0"
  base "image" {
    name               = "debian-base"
    version            = "1.x.x"
    include_deprecated = true
  }
}
`), LoadOptions{Library: testLibrary})
	require.False(t, diags.HasErrors(), diags.Error())
	require.Equal(t, "1.x.x", r.Image.Base.VersionSelector)
	require.True(t, r.Image.Base.IncludeDeprecated)
}
