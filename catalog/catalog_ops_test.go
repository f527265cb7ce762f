package catalog

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"testing"
	"time"

	"github.com/kiln-build/kiln/internal/testutil"
	"github.com/kiln-build/kiln/internal/units"
	"github.com/kiln-build/kiln/manifest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var now = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)

// publishBuild publishes a build with a manifest (created, spec) and one
// output file, as kiln build does.
func publishBuild(t *testing.T, root, name, version string, created time.Time, spec manifest.Catalog) Entry {
	t.Helper()
	s, err := NewStaging(root)
	require.NoError(t, err)
	defer s.Discard()
	disk := []byte("disk of " + name + " " + version + " " + created.String())
	require.NoError(t, os.WriteFile(filepath.Join(s.Artifact, name+".raw"), disk, 0o644))
	n, dir, err := s.Publish(name, version, func(build int) error {
		m := &manifest.Manifest{SchemaVersion: manifest.SchemaVersion, Name: name, Version: version, Build: build, Created: created, Catalog: spec,
			Outputs: []manifest.Output{{File: name + ".raw", Format: "raw", SHA256: sha(disk)}}}
		if err := m.Write(s.Artifact); err != nil {
			return err
		}
		return WriteInitialState(s.Artifact, spec, created)
	})
	require.NoError(t, err)
	e, err := Select(root, mustRef(t, fmt.Sprintf("%s@%s/%d", name, version, n)), true, now)
	require.NoError(t, err)
	require.Equal(t, dir, e.Dir)
	return e
}

func mustRef(t *testing.T, s string) Ref {
	r, err := ParseRef(s)
	require.NoError(t, err)
	return r
}

func ids(es []Entry) []string {
	out := []string{}
	for _, e := range es {
		out = append(out, e.ID())
	}
	return out
}

func listIDs(t *testing.T, root string) []string {
	es, err := List(root, "")
	require.NoError(t, err)
	return ids(es)
}

func TestRemoveNeverReusesTheNumber(t *testing.T) {
	root := t.TempDir()
	a := publishBuild(t, root, "web", "1.0.0", now, manifest.Catalog{})
	b := publishBuild(t, root, "web", "1.0.0", now, manifest.Catalog{})
	require.NoError(t, Remove(root, b))
	assert.Equal(t, []string{"web/1.0.0/1"}, listIDs(t, root))
	c := publishBuild(t, root, "web", "1.0.0", now, manifest.Catalog{})
	assert.Equal(t, 3, c.Build, "build 2 was removed, its number is not handed out again")
	require.NoError(t, Remove(root, a))
	assert.Equal(t, []string{"web/1.0.0/3"}, listIDs(t, root))
	assert.Error(t, Remove(root, a), "removing twice")
	trash, _ := os.ReadDir(filepath.Join(root, trashDir))
	assert.Empty(t, trash)
}

// A removal that died after renaming the build out of the catalog leaves its
// data in .trash, never in the catalog; the next staging sweeps it.
func TestInterruptedRemoveIsSwept(t *testing.T) {
	root := t.TempDir()
	e := publishBuild(t, root, "web", "1.0.0", now, manifest.Catalog{})
	require.NoError(t, os.MkdirAll(filepath.Join(root, trashDir), 0o755))
	require.NoError(t, os.Rename(e.Dir, filepath.Join(root, trashDir, "web-1.0.0-1-dead")))
	assert.Empty(t, listIDs(t, root))
	s, err := NewStaging(root)
	require.NoError(t, err)
	s.Discard()
	trash, _ := os.ReadDir(filepath.Join(root, trashDir))
	assert.Empty(t, trash)
}

func TestVisibilityRules(t *testing.T) {
	root := t.TempDir()
	plain := publishBuild(t, root, "web", "1.0.0", now.Add(-24*time.Hour), manifest.Catalog{})
	enc := publishBuild(t, root, "vault", "1.0.0", now, manifest.Catalog{Encrypted: true})
	paid := publishBuild(t, root, "paid", "1.0.0", now, manifest.Catalog{ProductCodes: []string{"abc123"}})

	st, err := Share(plain, ShareChange{Add: []string{"bob", "alice"}}, now)
	require.NoError(t, err)
	assert.Equal(t, Shared, st.Visibility)
	assert.Equal(t, []string{"alice", "bob"}, st.SharedWith)
	st, err = Share(plain, ShareChange{Remove: []string{"bob"}}, now)
	require.NoError(t, err)
	assert.Equal(t, []string{"alice"}, st.SharedWith)
	st, err = Share(plain, ShareChange{Remove: []string{"alice"}}, now)
	require.NoError(t, err)
	assert.Equal(t, Private, st.Visibility, "sharing with nobody is private")

	st, err = Share(plain, ShareChange{Public: true}, now)
	require.NoError(t, err)
	assert.Equal(t, Public, st.Visibility)
	require.NotNil(t, st.DeprecatedAt, "a public build is deprecated two years after its creation")
	assert.Equal(t, now.Add(-24*time.Hour).Add(PublicDeprecation), *st.DeprecatedAt)
	_, err = Undeprecate(plain, now)
	assert.ErrorContains(t, err, "make it private")
	_, err = Deprecate(plain, now.Add(3*365*units.Day), now)
	assert.ErrorContains(t, err, "at the latest")
	st, err = Deprecate(plain, now.Add(30*units.Day), now)
	require.NoError(t, err, "sooner is allowed")
	st, err = Share(plain, ShareChange{Private: true}, now)
	require.NoError(t, err)
	assert.Equal(t, Private, st.Visibility)
	st, err = Undeprecate(plain, now)
	require.NoError(t, err)
	assert.Nil(t, st.DeprecatedAt)
	var actions []string
	for _, c := range st.History {
		actions = append(actions, c.Action)
	}
	assert.Equal(t, []string{"publish", "share", "share", "share", "share", "deprecate", "share", "undeprecate"}, actions)

	for _, e := range []Entry{enc, paid} {
		_, err := Share(e, ShareChange{Public: true}, now)
		assert.ErrorContains(t, err, "cannot be made public", e.Name)
		st, err := ReadState(e.Dir)
		require.NoError(t, err)
		assert.Equal(t, Private, st.Visibility, "a refused change changes nothing")
		st, err = Share(e, ShareChange{Add: []string{"team-a"}}, now)
		require.NoError(t, err, "but it can be shared with named principals")
		assert.Equal(t, Shared, st.Visibility)
	}
	_, err = Share(plain, ShareChange{Add: []string{"bad name"}}, now)
	assert.Error(t, err)
	_, err = Share(plain, ShareChange{Public: true, Private: true}, now)
	assert.Error(t, err)
}

// Plan is what Apply does: on a catalog with many builds of several images
// and backdated creation times, the catalog after Apply is exactly the one
// before, minus the planned deletions, with the planned deprecations.
func TestPrunePlanMatchesResult(t *testing.T) {
	root := t.TempDir()
	day := units.Day
	keep3 := &manifest.Lifecycle{KeepLast: 3, DeprecateAfter: manifest.Age(30 * day), DeleteAfter: manifest.Age(90 * day)}
	onlyKeep := &manifest.Lifecycle{KeepLast: 2}
	ageOnly := &manifest.Lifecycle{DeprecateAfter: manifest.Age(10 * day), DeleteAfter: manifest.Age(20 * day)}
	for i := 0; i < 8; i++ { // web: 8 builds over two versions, one every 20 days
		v := "1.0.0"
		if i >= 4 {
			v = "1.1.0"
		}
		publishBuild(t, root, "web", v, now.Add(-time.Duration(150-20*i)*day), manifest.Catalog{Lifecycle: keep3})
	}
	for i := 0; i < 4; i++ {
		publishBuild(t, root, "db", "2.0.0", now.Add(-time.Duration(40-i)*day), manifest.Catalog{Lifecycle: onlyKeep})
	}
	for i := 0; i < 3; i++ { // every build too old: the newest survives, deprecated
		publishBuild(t, root, "old", "1.0.0", now.Add(-time.Duration(100-i)*day), manifest.Catalog{Lifecycle: ageOnly})
	}
	publishBuild(t, root, "norule", "1.0.0", now.Add(-1000*day), manifest.Catalog{})
	// web's oldest surviving build is deprecated already: not deprecated again.
	_, err := Deprecate(mustEntry(t, root, "web@1.1.0/1"), now.Add(-time.Hour), now)
	require.NoError(t, err)

	before := snapshot(t, root)
	plan, err := Plan(root, now)
	require.NoError(t, err)
	var got []string
	for _, a := range plan {
		got = append(got, a.Do+" "+a.Entry.ID())
	}
	sort.Strings(got)
	assert.Equal(t, []string{
		"delete db/2.0.0/1", "delete db/2.0.0/2",
		"delete old/1.0.0/1", "delete old/1.0.0/2",
		"delete web/1.0.0/1", "delete web/1.0.0/2", "delete web/1.0.0/3", "delete web/1.0.0/4", // 150 to 90 days old
		"deprecate old/1.0.0/3", // the newest is never deleted by a rule, only deprecated
		// web/1.1.0/1 (70 days) is deprecated already; 1.1.0/2-4 are the 3 newest
	}, got)
	_, err = Plan(root, now)
	require.NoError(t, err)
	assert.Equal(t, before, snapshot(t, root), "planning changes nothing")

	done, err := Apply(context.Background(), root, plan, now)
	require.NoError(t, err)
	assert.Equal(t, plan, done)
	after := snapshot(t, root)
	for _, a := range plan {
		switch a.Do {
		case "delete":
			delete(before, a.Entry.ID())
		case "deprecate":
			before[a.Entry.ID()] = true
		}
	}
	assert.Equal(t, before, after, "the catalog is what the plan said")
	again, err := Plan(root, now)
	require.NoError(t, err)
	assert.Empty(t, again, "pruning twice does nothing more")
}

func mustEntry(t *testing.T, root, ref string) Entry {
	e, err := Select(root, mustRef(t, ref), true, now)
	require.NoError(t, err)
	return e
}

// snapshot maps every build to whether it is deprecated at now.
func snapshot(t *testing.T, root string) map[string]bool {
	es, err := List(root, "")
	require.NoError(t, err)
	out := map[string]bool{}
	for _, e := range es {
		out[e.ID()] = e.State.Deprecated(now)
	}
	return out
}

func TestLifecycleValidate(t *testing.T) {
	assert.NoError(t, manifest.Lifecycle{KeepLast: 1}.Validate())
	assert.Error(t, manifest.Lifecycle{}.Validate())
	assert.Error(t, manifest.Lifecycle{KeepLast: -1}.Validate())
	assert.Error(t, manifest.Lifecycle{DeprecateAfter: manifest.Age(units.Day), DeleteAfter: manifest.Age(units.Day)}.Validate())
	data, err := json.Marshal(manifest.Lifecycle{KeepLast: 5, DeprecateAfter: manifest.Age(90 * units.Day)})
	require.NoError(t, err)
	assert.JSONEq(t, `{"keep_last":5,"deprecate_after":"90d"}`, string(data))
	var back manifest.Lifecycle
	require.NoError(t, json.Unmarshal(data, &back))
	assert.Equal(t, manifest.Age(90*units.Day), back.DeprecateAfter)
}

func TestDistribute(t *testing.T) {
	src, dst := t.TempDir(), t.TempDir()
	publishBuild(t, src, "web", "1.0.0", now, manifest.Catalog{})
	e := publishBuild(t, src, "web", "1.0.0", now, manifest.Catalog{Visibility: Shared, SharedWith: []string{"alice"}})

	out, copied, err := Distribute(context.Background(), e, dst, now)
	require.NoError(t, err)
	assert.True(t, copied)
	assert.Equal(t, filepath.Join(dst, "web", "1.0.0", "2"), out.Dir, "the copy keeps its build number")
	for _, f := range []string{"manifest.json", "web.raw"} {
		a, _ := os.ReadFile(filepath.Join(e.Dir, f))
		b, _ := os.ReadFile(filepath.Join(out.Dir, f))
		assert.Equal(t, a, b, f)
	}
	st, err := ReadState(out.Dir)
	require.NoError(t, err)
	assert.Equal(t, []string{"alice"}, st.SharedWith)
	assert.Equal(t, "copy", st.History[0].Action)
	assert.Equal(t, []string{"web/1.0.0/2"}, listIDs(t, dst))

	_, copied, err = Distribute(context.Background(), e, dst, now)
	require.NoError(t, err, "distributing again is a no-op")
	assert.False(t, copied)

	// A different build 1 at the destination: a conflict, nothing changes.
	publishBuild(t, dst, "web", "1.0.0", now.Add(time.Hour), manifest.Catalog{}) // gets 3
	other := publishBuild(t, src, "web", "1.0.0", now, manifest.Catalog{})       // src build 3
	_, _, err = Distribute(context.Background(), other, dst, now)
	assert.ErrorContains(t, err, "already holds a different web/1.0.0/3")

	// A damaged source (output no longer matching its manifest) is not copied.
	first := mustEntry(t, src, "web@1.0.0/1")
	require.NoError(t, os.WriteFile(filepath.Join(first.Dir, "web.raw"), []byte("bit rot"), 0o644))
	_, _, err = Distribute(context.Background(), first, dst, now)
	assert.ErrorContains(t, err, "the source build is damaged")
	assert.Equal(t, []string{"web/1.0.0/2", "web/1.0.0/3"}, listIDs(t, dst))
	staging, _ := os.ReadDir(filepath.Join(dst, stagingDir))
	assert.Empty(t, staging, "no half copy is left")
}

// A build SIGKILLed while publishing (inside finalize, under the version's
// lock, with its manifest written) leaves the catalog listing exactly the
// earlier builds; the next build publishes with the next number.
func TestKilledPublishLeavesNoHalfEntry(t *testing.T) {
	root := t.TempDir()
	publishBuild(t, root, "web", "1.0.0", now, manifest.Catalog{})
	publishBuild(t, root, "web", "1.0.0", now, manifest.Catalog{})
	ready := filepath.Join(t.TempDir(), "in-finalize")
	testutil.KillChild(t, "TestPublishChild", []string{"KILN_ARTIFACT_PUBLISH_CHILD=" + root, "KILN_ARTIFACT_READY=" + ready},
		30*time.Second, func() bool { _, err := os.Stat(ready); return err == nil })

	assert.Equal(t, []string{"web/1.0.0/1", "web/1.0.0/2"}, listIDs(t, root))
	e := publishBuild(t, root, "web", "1.0.0", now, manifest.Catalog{})
	assert.Equal(t, 3, e.Build)
	staging, _ := os.ReadDir(filepath.Join(root, stagingDir))
	assert.Empty(t, staging, "the killed build's staging was swept")
}

func TestPublishChild(t *testing.T) {
	s, err := NewStaging(testutil.ChildEnv(t, "KILN_ARTIFACT_PUBLISH_CHILD"))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(s.Artifact, "web.raw"), []byte("half"), 0o644))
	_, _, err = s.Publish("web", "1.0.0", func(build int) error {
		if err := os.WriteFile(filepath.Join(s.Artifact, "manifest.json"), []byte(`{"build":`+strconv.Itoa(build)+`}`), 0o644); err != nil {
			return err
		}
		if err := os.WriteFile(os.Getenv("KILN_ARTIFACT_READY"), nil, 0o644); err != nil {
			return err
		}
		time.Sleep(time.Minute) // killed here
		return nil
	})
	require.NoError(t, err)
}

func sha(b []byte) string { return fmt.Sprintf("%x", sha256.Sum256(b)) }

// A copy whose context is cancelled (kiln's SIGINT or SIGTERM) publishes
// nothing in the destination and leaves no staging there; a prune whose
// context is cancelled stops between two actions, each whole.
func TestCancelledDistributeAndPrune(t *testing.T) {
	src, dst := t.TempDir(), t.TempDir()
	e := publishBuild(t, src, "web", "1.0.0", now, manifest.Catalog{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, copied, err := Distribute(ctx, e, dst, now)
	require.ErrorIs(t, err, context.Canceled)
	assert.False(t, copied)
	assert.Empty(t, listIDs(t, dst))
	staging, _ := os.ReadDir(filepath.Join(dst, stagingDir))
	assert.Empty(t, staging)

	keep1 := manifest.Catalog{Lifecycle: &manifest.Lifecycle{KeepLast: 1}}
	for range 3 {
		publishBuild(t, src, "db", "1.0.0", now, keep1)
	}
	plan, err := Plan(src, now)
	require.NoError(t, err)
	require.Len(t, plan, 2)
	done, err := Apply(ctx, src, plan, now)
	require.ErrorIs(t, err, context.Canceled)
	assert.Empty(t, done)
	assert.Equal(t, []string{"db/1.0.0/1", "db/1.0.0/2", "db/1.0.0/3", "web/1.0.0/1"}, listIDs(t, src))
}
