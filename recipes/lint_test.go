package recipes

import (
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestLintBlock(t *testing.T) {
	src := `image "l" {
  version = "1.0.0"
  base "debian" { suite = "bookworm" }
  lint { allow = ["/etc/ssl/private/*.key", "/root/.ssh/id_ed25519"] }
}
`
	f := filepath.Join(t.TempDir(), "l.hcl")
	r, _, diags := Parse(f, []byte(src), LoadOptions{Library: testLibrary})
	require.Empty(t, diags, "%s", diags)
	require.Equal(t, Lint{Allow: []string{"/etc/ssl/private/*.key", "/root/.ssh/id_ed25519"}, Range: Range{f, 4, 3}}, r.Image.Lint)

	r, _, diags = Parse(f, []byte(`image "l" {
  version = "1.0.0"
  base "debian" { suite = "bookworm" }
}
`), LoadOptions{Library: testLibrary})
	require.Empty(t, diags, "%s", diags)
	require.Equal(t, Lint{Allow: []string{}}, r.Image.Lint, "without a lint block nothing is allowed")
}
