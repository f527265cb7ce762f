package recipes

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestCatalogLifecycleDistribute(t *testing.T) {
	dir := t.TempDir()
	src := []byte(`image "web" {
  version = "1.0.0"
  base "debian" { suite = "bookworm" }
  catalog {
    share_with    = ["alice", "team-a"]
    encrypted     = true
    product_codes = ["a1b2c3"]
  }
  lifecycle {
    keep_last       = 5
    deprecate_after = "90d"
    delete_after    = "52w"
  }
  distribute "eu" { images = "mirrors/eu" }
  distribute "us" { images = "/srv/us/images" }
  distribute "registry" {
    images        = "oci://registry.example:5000/images/web"
    plain_http    = true
    containerdisk = true
  }
}
`)
	r, _, diags := Parse(filepath.Join(dir, "r.hcl"), src, LoadOptions{Library: testLibrary})
	require.False(t, diags.HasErrors(), "%v", diags)
	img := r.Image
	assert.Equal(t, "shared", img.Catalog.Visibility, "share_with without visibility means shared")
	assert.Equal(t, []string{"alice", "team-a"}, img.Catalog.ShareWith)
	assert.True(t, img.Catalog.Encrypted)
	assert.Equal(t, []string{"a1b2c3"}, img.Catalog.ProductCodes)
	require.NotNil(t, img.Lifecycle)
	assert.Equal(t, 5, img.Lifecycle.KeepLast)
	assert.Equal(t, 90*24*time.Hour, img.Lifecycle.DeprecateAfter)
	assert.Equal(t, 364*24*time.Hour, img.Lifecycle.DeleteAfter)
	require.Len(t, img.Distribute, 3)
	assert.Equal(t, Distribution{Name: "eu", Images: filepath.Join(dir, "mirrors", "eu"), Range: img.Distribute[0].Range}, img.Distribute[0])
	assert.Equal(t, "/srv/us/images", img.Distribute[1].Images)
	assert.False(t, img.Distribute[1].Registry())
	assert.Equal(t, Distribution{Name: "registry", Images: "oci://registry.example:5000/images/web", PlainHTTP: true, ContainerDisk: true,
		Range: img.Distribute[2].Range}, img.Distribute[2])
	assert.True(t, img.Distribute[2].Registry())

	r, _, diags = Parse(filepath.Join(dir, "r.hcl"), []byte(`image "web" {
  version = "1.0.0"
  base "debian" { suite = "bookworm" }
}
`), LoadOptions{Library: testLibrary})
	require.False(t, diags.HasErrors(), "%v", diags)
	assert.Equal(t, "private", r.Image.Catalog.Visibility)
	assert.Nil(t, r.Image.Lifecycle)
	assert.Empty(t, r.Image.Distribute)
}
