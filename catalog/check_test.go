package catalog

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kiln-build/kiln/manifest"
)

// damageCatalog publishes web/1.0.0/1..7 and damages builds 2 to 7, one
// way each; it returns the root and the reason each damaged build must be
// listed with.
func damageCatalog(t *testing.T) (string, map[string]string) {
	root := t.TempDir()
	var es []Entry
	for range 7 {
		es = append(es, publishBuild(t, root, "web", "1.0.0", now, manifest.Catalog{Visibility: Shared, SharedWith: []string{"alice"}}))
	}
	state := func(e Entry) string { return filepath.Join(e.Dir, StateFile) }
	man := func(e Entry) string { return filepath.Join(e.Dir, manifest.FileName) }
	data, err := os.ReadFile(state(es[1]))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(state(es[1]), data[:len(data)/2], 0o644)) // truncated
	data, err = os.ReadFile(man(es[2]))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(man(es[2]), []byte(strings.Replace(string(data), `"schema_version": 1`, `"schema_version": 99`, 1)), 0o644))
	require.NoError(t, os.WriteFile(state(es[3]), []byte(`{"schema_version": 2, "visibility": "private"}`), 0o644))
	require.NoError(t, os.Remove(man(es[4])))
	outside := filepath.Join(t.TempDir(), "secret")
	require.NoError(t, os.WriteFile(outside, []byte(`{"visibility": "public"}`), 0o644))
	require.NoError(t, os.Remove(state(es[5])))
	require.NoError(t, os.Symlink(outside, state(es[5])))
	require.NoError(t, os.WriteFile(man(es[6]), []byte("{"), 0o644)) // truncated to one byte
	return root, map[string]string{
		"web/1.0.0/2": "catalog.json: unexpected end of JSON input",
		"web/1.0.0/3": "manifest.json: unsupported manifest schema version 99 (this Kiln reads 1)",
		"web/1.0.0/4": "catalog.json: unknown catalog.json schema_version 2 (this Kiln reads 1; a newer Kiln wrote it)",
		"web/1.0.0/5": "manifest.json is missing",
		"web/1.0.0/6": "catalog.json: a symbolic link, not followed; a build holds only regular files",
		"web/1.0.0/7": "manifest.json: unexpected end of JSON input",
	}
}

// One build per kind of damage: the good builds are listed as usual, each
// damaged one with its reason; no wildcard ever picks a damaged build, and
// naming one says what is wrong with it.
func TestScanListsDamagedBuildsBesideGoodOnes(t *testing.T) {
	root, want := damageCatalog(t)
	publishBuild(t, root, "db", "2.0.0", now, manifest.Catalog{})
	good, damaged, err := Scan(root, "")
	require.NoError(t, err)
	assert.Equal(t, []string{"db/2.0.0/1", "web/1.0.0/1"}, ids(good))
	got := map[string]string{}
	for _, d := range damaged {
		got[d.ID()] = d.Reason
	}
	assert.Equal(t, want, got)
	assert.Equal(t, []string{"db/2.0.0/1", "web/1.0.0/1"}, listIDs(t, root), "List is Scan without the damaged builds")

	e, err := Select(root, mustRef(t, "web"), true, now)
	require.NoError(t, err)
	assert.Equal(t, "web/1.0.0/1", e.ID(), "the newest readable build, not the damaged 7")
	_, err = Select(root, mustRef(t, "web@1.0.0/2"), true, now)
	assert.ErrorContains(t, err, "web/1.0.0/2 is damaged: catalog.json: unexpected end of JSON input")
	require.NoError(t, Remove(root, mustEntry(t, root, "web@1.0.0/1")))
	_, err = Select(root, mustRef(t, "web@1.x.x"), true, now)
	assert.ErrorContains(t, err, "damaged, and never picked: web/1.0.0/2, web/1.0.0/3")

	// A damaged build can be removed.
	_, damaged, err = Scan(root, "web")
	require.NoError(t, err)
	require.NoError(t, Remove(root, damaged[0].Entry()))
	_, damaged, err = Scan(root, "web")
	require.NoError(t, err)
	assert.Len(t, damaged, 5)
}

// Check reports every kind of damage and repairs what the manifest allows:
// missing and unreadable catalog.json files are recreated (the damaged one
// kept), .last-build is raised, temporaries are deleted; a changed output
// byte, a missing output, a damaged manifest, stray directories and links
// are reported and left alone. A second check finds only what could not
// be repaired.
func TestCheckReportsAndRepairs(t *testing.T) {
	root, _ := damageCatalog(t)
	good := mustEntry(t, root, "web@1.0.0/1")
	flip := func(e Entry, file string) {
		f, err := os.OpenFile(filepath.Join(e.Dir, file), os.O_RDWR, 0)
		require.NoError(t, err)
		b := make([]byte, 1)
		_, err = f.ReadAt(b, 3)
		require.NoError(t, err)
		b[0] ^= 0x01
		_, err = f.WriteAt(b, 3)
		require.NoError(t, err)
		require.NoError(t, f.Close())
	}
	other := publishBuild(t, root, "db", "2.0.0", now, manifest.Catalog{})
	flip(other, "db.raw") // one changed bit of a published disk
	gone := publishBuild(t, root, "db", "2.0.0", now, manifest.Catalog{})
	require.NoError(t, os.Remove(filepath.Join(gone.Dir, "db.raw")))
	noState := publishBuild(t, root, "db", "2.0.0", now, manifest.Catalog{Visibility: Public})
	require.NoError(t, os.Remove(filepath.Join(noState.Dir, StateFile)))
	require.NoError(t, os.WriteFile(filepath.Join(good.Dir, "."+StateFile+"-123"), []byte("half"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(root, "web", "1.0.0", lastBuildFile), []byte("1\n"), 0o644))
	outside := t.TempDir()
	require.NoError(t, os.Symlink(outside, filepath.Join(root, "evil")))
	require.NoError(t, os.Symlink("/etc/passwd", filepath.Join(good.Dir, "passwd")))
	require.NoError(t, os.MkdirAll(filepath.Join(root, "web", "junk"), 0o755))
	require.NoError(t, os.MkdirAll(filepath.Join(root, "web", "1.0.0", "01"), 0o755))

	rep, err := Check(context.Background(), root, false, now)
	require.NoError(t, err)
	kinds := map[string][]string{}
	for _, p := range rep.Problems {
		assert.False(t, p.Repaired)
		kinds[p.Kind] = append(kinds[p.Kind], p.String())
	}
	assert.Equal(t, 10, rep.Builds)
	assert.Len(t, kinds[ProblemSHA256], 1)
	assert.Contains(t, kinds[ProblemSHA256][0], "db/2.0.0/1: db.raw has sha256 ")
	assert.Contains(t, kinds[ProblemSHA256][0], "cannot be repaired")
	assert.Equal(t, []string{"db/2.0.0/2: the raw output db.raw is missing (cannot be repaired: rebuild, copy the build back from a catalog that has it, or remove it)"}, kinds[ProblemMissing])
	assert.Len(t, kinds[ProblemNoState], 1)
	assert.Len(t, kinds[ProblemDamaged], 6) // builds 2 to 7 of web
	assert.Len(t, kinds[ProblemTemp], 1)
	assert.Len(t, kinds[ProblemLastBuild], 1)
	assert.Len(t, kinds[ProblemStray], 2)
	require.Len(t, kinds[ProblemLink], 3) // evil, passwd, build 6's catalog.json
	assert.Contains(t, strings.Join(kinds[ProblemLink], "\n"), "symbolic link leaving the catalog (to "+outside+")")
	assert.Contains(t, strings.Join(kinds[ProblemLink], "\n"), "web/1.0.0/1: symbolic link leaving the catalog (to /etc/passwd)")

	rep, err = Check(context.Background(), root, true, now)
	require.NoError(t, err)
	repaired := 0
	for _, p := range rep.Problems {
		if p.Repaired {
			repaired++
			assert.True(t, p.Fixable)
		}
	}
	assert.Equal(t, 4, repaired, "catalog.json of db 3 and web 2, the temporary file, .last-build")
	st, err := ReadState(noState.Dir)
	require.NoError(t, err)
	assert.Equal(t, Public, st.Visibility, "recreated from the manifest's catalog block")
	assert.Equal(t, "repair", st.History[len(st.History)-1].Action)
	st, err = ReadState(mustEntry(t, root, "web@1.0.0/2").Dir)
	require.NoError(t, err)
	assert.Equal(t, []string{"alice"}, st.SharedWith)
	assert.FileExists(t, filepath.Join(root, "web", "1.0.0", "2", StateFile+".damaged"))
	assert.Equal(t, 7, lastBuild(filepath.Join(root, "web", "1.0.0")), "raised to the highest build")
	assert.DirExists(t, outside, "links are reported, never followed or removed")

	again, err := Check(context.Background(), root, false, now)
	require.NoError(t, err)
	assert.Equal(t, rep.Unrepaired(), again.Unrepaired())
	assert.Equal(t, len(again.Problems), again.Unrepaired(), "nothing repairable is left")
}
