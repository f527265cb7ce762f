package main

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kiln-build/kiln/catalog"
	"github.com/kiln-build/kiln/internal/testutil"
	"github.com/kiln-build/kiln/manifest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fakeBuild publishes a build the way kiln build does (manifest.json with
// created, catalog and outputs; catalog.json), without building an image.
func fakeBuild(t *testing.T, root, name, version string, created time.Time, spec manifest.Catalog) int {
	t.Helper()
	s, err := catalog.NewStaging(root)
	require.NoError(t, err)
	defer s.Discard()
	disk := []byte(fmt.Sprintf("disk %s %s %v", name, version, created))
	require.NoError(t, os.WriteFile(filepath.Join(s.Artifact, name+".raw"), disk, 0o644))
	n, _, err := s.Publish(name, version, func(build int) error {
		data, _ := json.Marshal(map[string]any{"schema_version": manifest.SchemaVersion, "name": name, "version": version, "build": build, "created": created, "catalog": spec,
			"outputs": []map[string]any{{"file": name + ".raw", "format": "raw", "sha256": fmt.Sprintf("%x", sha256.Sum256(disk))}}})
		if err := os.WriteFile(filepath.Join(s.Artifact, "manifest.json"), data, 0o644); err != nil {
			return err
		}
		return catalog.WriteInitialState(s.Artifact, spec, created)
	})
	require.NoError(t, err)
	return n
}

// twoEarlierBuilds publishes builds 1 and 2 of NAME 1.0.0, an hour old,
// and returns the catalog's listing of them.
func twoEarlierBuilds(t *testing.T, root, name string) []listItem {
	t.Helper()
	earlier := time.Now().Add(-time.Hour).UTC().Truncate(time.Second)
	fakeBuild(t, root, name, "1.0.0", earlier, manifest.Catalog{})
	fakeBuild(t, root, name, "1.0.0", earlier, manifest.Catalog{})
	before := listJSON(t, root)
	require.Equal(t, []string{name + "/1.0.0/1", name + "/1.0.0/2"}, itemIDs(before))
	return before
}

func listJSON(t *testing.T, root string, extra ...string) []listItem {
	t.Helper()
	code, out, errOut := runKiln(t, append([]string{"images", "list", "--json", "--images", root}, extra...)...)
	require.Equal(t, 0, code, errOut)
	var items []listItem
	require.NoError(t, json.Unmarshal([]byte(out), &items))
	return items
}

func itemIDs(items []listItem) []string {
	out := []string{}
	for _, it := range items {
		out = append(out, it.ID)
	}
	return out
}

// A build SIGKILLed in the publish window (inside finalize, holding the
// version's lock, its manifest written) leaves kiln images list showing
// exactly the earlier builds, and the next publish succeeds with the next
// number.
func TestImagesKilledPublishLeavesEarlierBuilds(t *testing.T) {
	root := t.TempDir()
	before := twoEarlierBuilds(t, root, "web")

	ready := filepath.Join(t.TempDir(), "in-finalize")
	testutil.KillChild(t, "TestImagesPublishChild", []string{"KILN_IMAGES_PUBLISH_CHILD=" + root, "KILN_IMAGES_READY=" + ready},
		time.Minute, func() bool { _, err := os.Stat(ready); return err == nil })
	stagings, _ := filepath.Glob(filepath.Join(root, ".staging", "build-*", "artifact", "manifest.json"))
	require.Len(t, stagings, 1, "the child was killed in the publish window, its manifest written")

	assert.Equal(t, before, listJSON(t, root), "the catalog lists exactly the earlier builds")
	code, out, errOut := runKiln(t, "images", "show", "--images", root, "web@1.x.x")
	require.Equal(t, 0, code, errOut)
	assert.Contains(t, out, "web/1.0.0/2")
	assert.Equal(t, 3, fakeBuild(t, root, "web", "1.0.0", time.Now().UTC().Truncate(time.Second), manifest.Catalog{}), "the next build publishes")
	assert.Equal(t, []string{"web/1.0.0/1", "web/1.0.0/2", "web/1.0.0/3"}, itemIDs(listJSON(t, root)))
	left, _ := os.ReadDir(filepath.Join(root, ".staging"))
	assert.Empty(t, left, "the killed build's staging directory was swept")
}

func TestImagesPublishChild(t *testing.T) {
	s, err := catalog.NewStaging(testutil.ChildEnv(t, "KILN_IMAGES_PUBLISH_CHILD"))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(s.Artifact, "web.raw"), []byte("half"), 0o644))
	_, _, err = s.Publish("web", "1.0.0", func(build int) error {
		m := `{"name":"web","version":"1.0.0","build":` + strconv.Itoa(build) + `}`
		if err := os.WriteFile(filepath.Join(s.Artifact, "manifest.json"), []byte(m), 0o644); err != nil {
			return err
		}
		if err := os.WriteFile(os.Getenv("KILN_IMAGES_READY"), nil, 0o644); err != nil {
			return err
		}
		time.Sleep(2 * time.Minute) // SIGKILLed here
		return nil
	})
	require.NoError(t, err)
}

// prune --dry-run prints exactly what prune then does, and the catalog
// afterwards is the plan's result.
func TestImagesPruneDryRunMatchesPrune(t *testing.T) {
	root := t.TempDir()
	day := 24 * time.Hour
	now := time.Now().UTC().Truncate(time.Second)
	rule := &manifest.Lifecycle{KeepLast: 2, DeprecateAfter: manifest.Age(30 * day), DeleteAfter: manifest.Age(60 * day)}
	for i := 0; i < 10; i++ { // web: one build every 10 days, 100 to 10 days old
		fakeBuild(t, root, "web", "1."+strconv.Itoa(i/4)+".0", now.Add(-time.Duration(100-10*i)*day), manifest.Catalog{Lifecycle: rule})
	}
	for i := 0; i < 5; i++ {
		fakeBuild(t, root, "db", "1.0.0", now.Add(-time.Duration(5-i)*day), manifest.Catalog{Lifecycle: &manifest.Lifecycle{KeepLast: 3}})
	}
	fakeBuild(t, root, "kept", "1.0.0", now.Add(-900*day), manifest.Catalog{})
	before := listJSON(t, root)

	code, dry, errOut := runKiln(t, "images", "prune", "--dry-run", "--images", root)
	require.Equal(t, 0, code, errOut)
	assert.Equal(t, before, listJSON(t, root), "--dry-run changes nothing")
	code, did, errOut := runKiln(t, "images", "prune", "--images", root)
	require.Equal(t, 0, code, errOut)
	t.Logf("prune --dry-run:\n%s", dry)
	require.NotEmpty(t, strings.TrimSpace(did))
	assert.Equal(t, did, strings.ReplaceAll(dry, "would ", ""), "the dry run printed what prune did")

	// The catalog is the plan's result: deleted builds are gone, deprecated
	// ones flagged, every other build as it was.
	want := map[string]bool{}
	for _, it := range before {
		want[it.ID] = it.Deprecated
	}
	deleted, deprecated := 0, 0
	for _, line := range strings.Split(strings.TrimSpace(did), "\n") {
		f := strings.Fields(line)
		switch f[0] {
		case "delete":
			delete(want, f[1])
			deleted++
		case "deprecate":
			want[f[1]] = true
			deprecated++
		}
	}
	got := map[string]bool{}
	for _, it := range listJSON(t, root) {
		got[it.ID] = it.Deprecated
	}
	assert.Equal(t, want, got)
	assert.Equal(t, 7, deleted, "web: the 5 builds 60 to 100 days old; db: the 2 beyond keep_last")
	assert.Equal(t, 3, deprecated, "web: the 3 builds 30 to 50 days old (the 2 newest are kept)")
	assert.Contains(t, got, "kept/1.0.0/1", "an image without a rule is left alone")

	code, out, _ := runKiln(t, "images", "prune", "--dry-run", "--images", root)
	require.Equal(t, 0, code)
	assert.Equal(t, "nothing to prune\n", out)
}

func TestImagesShareDeprecateShowRm(t *testing.T) {
	root := t.TempDir()
	now := time.Now().UTC().Truncate(time.Second)
	fakeBuild(t, root, "web", "1.0.0", now, manifest.Catalog{})
	fakeBuild(t, root, "web", "1.1.0", now, manifest.Catalog{})
	fakeBuild(t, root, "vault", "1.0.0", now, manifest.Catalog{Encrypted: true, Visibility: "shared", SharedWith: []string{"ops"}})
	kiln := func(args ...string) (int, string, string) {
		return runKiln(t, append(append([]string{"images"}, args...), "--images", root)...)
	}

	code, out, errOut := kiln("share", "web@1.1.0/1", "--add", "alice", "--add", "bob")
	require.Equal(t, 0, code, errOut)
	assert.Equal(t, "web/1.1.0/1: shared (alice, bob)\n", out)
	code, out, _ = kiln("share", "web@1.1.0", "--remove", "bob")
	require.Equal(t, 0, code)
	assert.Equal(t, "web/1.1.0/1: shared (alice)\n", out)
	code, _, errOut = kiln("share", "vault@1.0.0/1", "--public")
	assert.Equal(t, 1, code)
	assert.Contains(t, errOut, "cannot be made public: it is encrypted")
	code, _, _ = kiln("share", "web@1.x.x", "--public")
	assert.Equal(t, 2, code, "share takes an exact version")

	// Deprecating 1.1.0 makes web@1.x.x pick 1.0.0, unless --include-deprecated.
	code, out, errOut = kiln("deprecate", "web@1.1.0/1")
	require.Equal(t, 0, code, errOut)
	assert.Contains(t, out, "web/1.1.0/1: deprecated since")
	code, out, _ = kiln("show", "web@1.x.x")
	require.Equal(t, 0, code)
	assert.True(t, strings.HasPrefix(out, "web/1.0.0/1\n"), out)
	code, out, _ = kiln("show", "web@1.x.x", "--include-deprecated")
	require.Equal(t, 0, code)
	assert.True(t, strings.HasPrefix(out, "web/1.1.0/1\n"), out)
	assert.Contains(t, out, "history:")
	items := listJSON(t, root, "--name", "web")
	require.Len(t, items, 2)
	assert.True(t, items[1].Deprecated, "a deprecated build stays listed, flagged")
	code, _, _ = kiln("deprecate", "web@1.1.0/1", "--undo")
	require.Equal(t, 0, code)
	code, out, _ = kiln("show", "web@1.x.x")
	require.Equal(t, 0, code)
	assert.True(t, strings.HasPrefix(out, "web/1.1.0/1\n"), out)
	code, _, errOut = kiln("deprecate", "web@1.0.0", "--at", "2099-01-01")
	require.Equal(t, 0, code, errOut)
	code, _, _ = kiln("deprecate", "web@1.0.0", "--at", "next tuesday")
	assert.Equal(t, 2, code)

	var shown struct {
		State catalog.State
	}
	code, out, _ = kiln("show", "--json", "web@1.1.0/1")
	require.Equal(t, 0, code)
	require.NoError(t, json.Unmarshal([]byte(out), &shown))
	var actions []string
	for _, c := range shown.State.History {
		actions = append(actions, c.Action)
	}
	assert.Equal(t, []string{"publish", "share", "share", "deprecate", "undeprecate"}, actions)

	code, _, _ = kiln("rm", "web@1.1.0")
	assert.Equal(t, 2, code, "rm names one build")
	code, out, errOut = kiln("rm", "web@1.1.0/1")
	require.Equal(t, 0, code, errOut)
	assert.Equal(t, "removed web/1.1.0/1\n", out)
	assert.Equal(t, []string{"vault/1.0.0/1", "web/1.0.0/1"}, itemIDs(listJSON(t, root)))
	code, _, _ = kiln("rm", "web@1.1.0/1")
	assert.Equal(t, 1, code)

	// copy: to another catalog, same build number, verified.
	other := t.TempDir()
	code, out, errOut = kiln("copy", "web", "--to", other)
	require.Equal(t, 0, code, errOut)
	assert.Contains(t, out, "copied web/1.0.0/1 to "+filepath.Join(other, "web", "1.0.0", "1"))
	assert.Equal(t, []string{"web/1.0.0/1"}, itemIDs(listJSON(t, other)))
}

// A pipeline's run prunes the image it built and no other.
func TestPipelinePrunesOnlyItsImage(t *testing.T) {
	root := t.TempDir()
	now := time.Now().UTC().Truncate(time.Second)
	for _, name := range []string{"web", "db"} {
		for i := 0; i < 4; i++ {
			fakeBuild(t, root, name, "1.0.0", now.Add(-time.Duration(4-i)*time.Hour), manifest.Catalog{Lifecycle: &manifest.Lifecycle{KeepLast: 2}})
		}
	}
	did, err := pruneImage(context.Background(), root, "web", now)
	require.NoError(t, err)
	assert.ElementsMatch(t, []string{"delete web/1.0.0/1", "delete web/1.0.0/2"}, did)
	assert.Equal(t, []string{"db/1.0.0/1", "db/1.0.0/2", "db/1.0.0/3", "db/1.0.0/4", "web/1.0.0/3", "web/1.0.0/4"}, itemIDs(listJSON(t, root)))
}
