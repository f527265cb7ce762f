package oci

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kiln-build/kiln/internal/testutil"
	"github.com/kiln-build/kiln/manifest"
)

// A repository's builds are pruned by the lifecycle rule their manifests
// carry (keep_last = 2): the oldest build's manifest, tags, containerDisk
// and referrers index are deleted; the newest two and VERSION stay, and a
// dry run deletes nothing.
func TestPruneRegistry(t *testing.T) {
	ctx := context.Background()
	reg := testutil.StartRegistry(t, "", "")
	to := ref(t, reg.Addr+"/web")
	for b := 1; b <= 3; b++ {
		dir := fakeBuild(t, t.TempDir(), "web", "1.0.0", b, int64(b))
		m, err := manifest.Read(dir)
		require.NoError(t, err)
		m.Created = buildCreated.Add(time.Duration(b) * time.Hour)
		m.Catalog.Lifecycle = &manifest.Lifecycle{KeepLast: 2}
		require.NoError(t, m.Write(dir))
		_, err = Push(ctx, dir, to, Options{}, b == 1)
		require.NoError(t, err)
	}
	before := tags(t, reg.Addr, "web")
	require.Contains(t, before, "1.0.0-1-containerdisk")

	plan, err := Prune(ctx, to, Options{}, time.Now(), true)
	require.NoError(t, err)
	require.Len(t, plan, 1)
	require.Equal(t, "delete", plan[0].Do)
	require.Equal(t, "web/1.0.0/1", plan[0].Entry.ID())
	require.Equal(t, before, tags(t, reg.Addr, "web"), "a dry run changes nothing")

	done, err := Prune(ctx, to, Options{}, time.Now(), false)
	require.NoError(t, err)
	require.Len(t, done, 1)
	var left []string
	indexes := 0
	for _, tag := range tags(t, reg.Addr, "web") {
		if strings.HasPrefix(tag, "sha256-") {
			indexes++
		}
		if strings.HasPrefix(tag, "1.0.0-1") || tag == "1.0.0" {
			left = append(left, tag)
		}
	}
	require.Equal(t, []string{"1.0.0"}, left, "build 1's tags, claim and containerDisk are gone")
	require.Equal(t, 2, indexes, "build 1's referrers index is gone")
	requireTagsComplete(t, reg.Addr, "web")
	p, err := Pull(ctx, ref(t, reg.Addr+"/web:1.0.0"), t.TempDir(), Options{}, time.Now())
	require.NoError(t, err)
	require.Equal(t, "web/1.0.0/3", p.Entry.ID())
}
