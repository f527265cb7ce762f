package catalog

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/kiln-build/kiln/manifest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// catalogOf publishes empty builds: each "name/version" once per count.
func catalogOf(t *testing.T, builds map[string]int) string {
	t.Helper()
	root := t.TempDir()
	for nv, n := range builds {
		name, version := filepath.Split(nv)
		for i := 0; i < n; i++ {
			s, err := NewStaging(root)
			require.NoError(t, err)
			_, _, err = s.Publish(filepath.Clean(name), version, func(build int) error {
				m := manifest.Manifest{SchemaVersion: manifest.SchemaVersion, Name: filepath.Clean(name), Version: version, Build: build}
				return m.Write(s.Artifact)
			})
			require.NoError(t, err)
			s.Discard()
		}
	}
	return root
}

func TestSelect(t *testing.T) {
	root := catalogOf(t, map[string]int{"web/1.0.0": 1, "web/1.2.0": 3, "web/1.10.0": 2, "web/2.0.0": 1, "db/1.0.0": 1})
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	past, future := now.Add(-time.Hour), now.Add(time.Hour)
	deprecate := func(ref string, at time.Time) {
		r, err := ParseRef(ref)
		require.NoError(t, err)
		e, err := Select(root, r, true, now)
		require.NoError(t, err)
		require.NoError(t, UpdateState(e, func(s *State) error { s.DeprecatedAt = &at; return nil }))
	}
	deprecate("web@1.10.0/2", past)
	deprecate("web@2.0.0/1", past)
	deprecate("web@1.2.0/3", future) // not yet

	for _, tc := range []struct {
		ref        string
		includeDep bool
		want       string // "" = error
	}{
		{"web", false, "web/1.10.0/1"},          // 2.0.0 is deprecated; 1.10.0/2 too
		{"web", true, "web/2.0.0/1"},            // --include-deprecated
		{"web@x.x.x", false, "web/1.10.0/1"},    //
		{"web@1.x.x", false, "web/1.10.0/1"},    // numeric order: 1.10 > 1.2
		{"web@1.2.x", false, "web/1.2.0/3"},     // deprecation in the future does not count yet
		{"web@1.2.0", false, "web/1.2.0/3"},     //
		{"web@1.2.0/1", false, "web/1.2.0/1"},   // an explicit build
		{"web@1.10.0/2", false, "web/1.10.0/2"}, // explicit builds are picked even when deprecated
		{"web@2.x.x", false, ""},                // every build deprecated
		{"web@2.x.x", true, "web/2.0.0/1"},      //
		{"web@3.x.x", false, ""},                //
		{"db@1.x.x", false, "db/1.0.0/1"},       //
		{"nope", false, ""},                     //
		{"web@1.0.0/9", false, ""},              //
	} {
		r, err := ParseRef(tc.ref)
		require.NoError(t, err, tc.ref)
		e, err := Select(root, r, tc.includeDep, now)
		if tc.want == "" {
			assert.Error(t, err, tc.ref)
			continue
		}
		require.NoError(t, err, tc.ref)
		assert.Equal(t, tc.want, e.ID(), tc.ref)
	}
	r, _ := ParseRef("web@2.x.x")
	_, err := Select(root, r, false, now)
	assert.ErrorContains(t, err, "1 deprecated build(s) were skipped; pass --include-deprecated")
}

func TestParseRefErrors(t *testing.T) {
	for _, s := range []string{"", "Web", "web@1.x", "web@1.x.x/2", "web@1.0.0/0", "web@1.0.0/01", "web@1.0.0/x", "web@1.x.3"} {
		_, err := ParseRef(s)
		assert.Error(t, err, s)
	}
}

func TestListIgnoresWhatIsNotABuild(t *testing.T) {
	root := catalogOf(t, map[string]int{"web/1.0.0": 2})
	for _, d := range []string{".failed/web-1.0.0-x", "web/not-a-version/1", "web/1.0.0/01", "web/1.0.0/tmp"} {
		require.NoError(t, os.MkdirAll(filepath.Join(root, d), 0o755))
	}
	es, err := List(root, "")
	require.NoError(t, err)
	var ids []string
	for _, e := range es {
		ids = append(ids, e.ID())
	}
	assert.Equal(t, []string{"web/1.0.0/1", "web/1.0.0/2"}, ids)
}

func TestUpdateStateIsRecorded(t *testing.T) {
	root := catalogOf(t, map[string]int{"web/1.0.0": 1})
	r, _ := ParseRef("web@1.0.0/1")
	e, err := Select(root, r, false, time.Now())
	require.NoError(t, err)
	require.NoError(t, UpdateState(e, func(s *State) error {
		s.Visibility = "shared"
		s.SharedWith = []string{"team-a"}
		s.History = append(s.History, Change{At: time.Unix(1, 0).UTC(), Action: "share", Detail: "team-a"})
		return nil
	}))
	st, err := ReadState(e.Dir)
	require.NoError(t, err)
	assert.Equal(t, "shared", st.Visibility)
	assert.Equal(t, []string{"team-a"}, st.SharedWith)
	assert.Len(t, st.History, 1)
	left, _ := filepath.Glob(filepath.Join(e.Dir, "."+StateFile+"-*"))
	assert.Empty(t, left, "no temporary file is left behind")
}
