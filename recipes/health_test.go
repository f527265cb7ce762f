package recipes

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestSkipHealth(t *testing.T) {
	src := `image "x" {
  version     = "1.0.0"
  skip_health = ["failed-units", "kernel-errors", "failed-units"]
  base "debian" { suite = "bookworm" }
}`
	r, _, diags := Parse("x.hcl", []byte(src), LoadOptions{Library: testLibrary})
	require.False(t, diags.HasErrors(), diags.Error())
	require.Equal(t, []string{"failed-units", "kernel-errors"}, r.Image.SkipHealth)

	r, _, diags = Parse("x.hcl", []byte(`image "x" {
  version = "1.0.0"
  base "debian" { suite = "bookworm" }
}`), LoadOptions{Library: testLibrary})
	require.False(t, diags.HasErrors(), diags.Error())
	require.Empty(t, r.Image.SkipHealth)

	_, _, diags = Parse("x.hcl", []byte(`image "x" {
  version     = "1.0.0"
  skip_health = ["oops"]
  base "debian" { suite = "bookworm" }
}`), LoadOptions{Library: testLibrary})
	require.True(t, diags.HasErrors())
	require.Equal(t, "x.hcl", diags[0].Subject.Filename)
	require.Equal(t, 3, diags[0].Subject.Start.Line)
	require.Equal(t, 18, diags[0].Subject.Start.Column)
	require.Contains(t, diags[0].Detail, `"multi-user", "failed-units", "kernel-errors" or "secure-boot"`)
}
