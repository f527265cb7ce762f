package oci

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	ggcr "github.com/google/go-containerregistry/pkg/registry"
	"github.com/stretchr/testify/require"

	"github.com/kiln-build/kiln/catalog"
	"github.com/kiln-build/kiln/internal/testhook"
	"github.com/kiln-build/kiln/internal/testutil"
	"github.com/kiln-build/kiln/manifest"
)

// On a registry with the referrers API (go-containerregistry's, in
// process), the SBOM and provenance are listed by the API itself, with
// their artifact types and the build's manifest as subject; no
// sha256-<digest> tag is made; a pull restores them.
func TestReferrersAPI(t *testing.T) {
	srv := httptest.NewServer(ggcr.New(ggcr.WithReferrersSupport(true), ggcr.Logger(log.New(io.Discard, "", 0))))
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")
	dir := fakeBuild(t, t.TempDir(), "web", "1.0.0", 1, 1)
	res, err := Push(context.Background(), dir, ref(t, addr+"/web"), Options{}, false)
	require.NoError(t, err)
	require.Equal(t, []string{"1.0.0", "1.0.0-1", "1.0.0-1." + strings.TrimPrefix(res.Digest, "sha256:")[:16]}, tags(t, addr, "web"))

	resp, err := http.Get(srv.URL + "/v2/web/referrers/" + res.Digest)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	var index struct {
		MediaType string
		Manifests []struct{ Digest string }
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&index))
	require.Equal(t, "application/vnd.oci.image.index.v1+json", index.MediaType)
	repo, err := repository(ref(t, addr+"/web"), Options{})
	require.NoError(t, err)
	var types []string
	for _, m := range index.Manifests {
		_, man, err := fetchManifest(context.Background(), repo, m.Digest)
		require.NoError(t, err)
		require.Equal(t, res.Digest, man.Subject.Digest.String())
		types = append(types, man.ArtifactType)
	}
	require.ElementsMatch(t, []string{"application/spdx+json", "application/vnd.in-toto+json"}, types)

	p, err := Pull(context.Background(), ref(t, addr+"/web:1.0.0-1"), t.TempDir(), Options{}, time.Now())
	require.NoError(t, err)
	require.Equal(t, []string{"sbom.spdx.json", "provenance.dsse.json"}, p.Referrers)
	sameFiles(t, dir, p.Entry.Dir)
}

// Two builders push the same name and version at the same time. Builds
// with different numbers both land, and VERSION ends at the higher one.
// Two different builds under one number never both succeed: a push that
// fails says which two digests clash, changes no tag, and every build
// stays reachable by its claim tag. The same build pushed from two
// catalogs (a distributed copy) lands once, from both.
func TestConcurrentPushesLoseNothing(t *testing.T) {
	ctx := context.Background()
	reg := testutil.StartRegistry(t, "", "")
	two := func(repo string, a, b string) (errs [2]error, res [2]*Pushed) {
		var wg sync.WaitGroup
		for i, dir := range []string{a, b} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				res[i], errs[i] = Push(ctx, dir, ref(t, reg.Addr+"/"+repo), Options{}, false)
			}()
		}
		wg.Wait()
		return errs, res
	}

	// Builds 1 and 2, from two catalogs.
	b1, b2 := fakeBuild(t, t.TempDir(), "web", "1.0.0", 1, 1), fakeBuild(t, t.TempDir(), "web", "1.0.0", 2, 2)
	errs, res := two("numbers", b1, b2)
	require.NoError(t, errs[0])
	require.NoError(t, errs[1])
	repo, err := repository(ref(t, reg.Addr+"/numbers"), Options{})
	require.NoError(t, err)
	for _, c := range []struct{ tag, digest string }{{"1.0.0-1", res[0].Digest}, {"1.0.0-2", res[1].Digest}, {"1.0.0", res[1].Digest}} {
		d, err := repo.Resolve(ctx, c.tag)
		require.NoError(t, err)
		require.Equal(t, c.digest, d.Digest.String(), c.tag)
	}

	// The same number, different builds: several rounds, for the timing.
	for round := 0; round < 5; round++ {
		repoName := "clash" + string(rune('a'+round))
		a, b := fakeBuild(t, t.TempDir(), "web", "1.0.0", 1, 10), fakeBuild(t, t.TempDir(), "web", "1.0.0", 1, 20)
		errs, res := two(repoName, a, b)
		require.False(t, errs[0] == nil && errs[1] == nil, "round %d: two different builds both pushed as 1.0.0-1", round)
		digests := map[string]bool{}
		for i, err := range errs {
			if err == nil {
				digests[res[i].Digest] = true
				continue
			}
			var ce *ClashError
			require.True(t, errors.As(err, &ce), "round %d: %v", round, err)
			require.NotEqual(t, ce.Ours, ce.Theirs)
			require.Contains(t, err.Error(), ce.Ours)
			require.Contains(t, err.Error(), ce.Theirs)
			digests[ce.Ours], digests[ce.Theirs] = true, true
		}
		require.Len(t, digests, 2)
		repo, err := repository(ref(t, reg.Addr+"/"+repoName), Options{})
		require.NoError(t, err)
		for d := range digests { // both reachable by their claims
			_, err := repo.Resolve(ctx, claimTag("1.0.0-1", d))
			require.NoError(t, err, "round %d: %s has its claim tag", round, d)
		}
		if d, err := repo.Resolve(ctx, "1.0.0-1"); err == nil {
			for i := range errs {
				if errs[i] == nil {
					require.Equal(t, res[i].Digest, d.Digest.String(), "round %d: the tag is the successful push's", round)
				}
			}
		}
		// Later pushes of either fail the same way: nothing is overwritten.
		_, err = Push(ctx, b, ref(t, reg.Addr+"/"+repoName), Options{}, false)
		var ce *ClashError
		require.True(t, errors.As(err, &ce), "round %d: %v", round, err)
	}

	// The same build from two catalogs.
	a := fakeBuild(t, t.TempDir(), "web", "1.0.0", 1, 7)
	copyDir := filepath.Join(t.TempDir(), "web", "1.0.0", "1")
	require.NoError(t, os.MkdirAll(filepath.Dir(copyDir), 0o755))
	testutil.Run(t, "cp", "-a", a, copyDir)
	errs, res = two("same", a, copyDir)
	require.NoError(t, errs[0])
	require.NoError(t, errs[1])
	require.Equal(t, res[0].Digest, res[1].Digest)
}

// pushChild is the environment variable that makes TestPushChild push.
const pushChild = "KILN_OCI_TEST_PUSH"

// TestPushChild runs only as a child of the kill and memory tests: it
// pushes (or pulls) as its environment says, holding at a push point when
// asked.
func TestPushChild(t *testing.T) {
	spec := testutil.ChildEnv(t, pushChild)
	var job struct{ Op, Dir, Ref, Hold, Ready, Root string }
	require.NoError(t, json.Unmarshal([]byte(spec), &job))
	if job.Hold != "" {
		testhook.Reached = func(point string) {
			if point == job.Hold {
				require.NoError(t, os.WriteFile(job.Ready, nil, 0o644))
				time.Sleep(time.Hour)
			}
		}
	}
	var err error
	if job.Op == "pull" {
		_, err = Pull(context.Background(), ref(t, job.Ref), job.Root, Options{}, time.Now())
	} else {
		_, err = Push(context.Background(), job.Dir, ref(t, job.Ref), Options{}, false)
	}
	require.NoError(t, err)
}

func childJob(t *testing.T, job map[string]string) []string {
	data, err := json.Marshal(job)
	require.NoError(t, err)
	return []string{pushChild + "=" + string(data)}
}

// A push SIGKILLed at any point leaves no tag on an incomplete artifact:
// while a blob is uploading, after the blobs, after the manifest, after
// the claim. Every tag there is then points at a manifest whose blobs are
// all in the registry, and the next push completes.
func TestPushKilledLeavesNoTagOnAPartialArtifact(t *testing.T) {
	if testing.Short() {
		t.Skip("pushes 256 MiB five times")
	}
	reg := testutil.StartRegistry(t, "", "")
	// A large output, so that the kill lands while it uploads.
	dir := bigBuild(t, 256<<20)

	for _, hold := range []string{"", testhook.PushBlobs, testhook.PushManifest, testhook.PushClaimed} {
		name := strings.ReplaceAll(hold, " ", "-")
		if hold == "" {
			name = "uploading"
		}
		t.Run(name, func(t *testing.T) {
			repoName := "killed-" + name
			ready := filepath.Join(t.TempDir(), "ready")
			env := childJob(t, map[string]string{"Op": "push", "Dir": dir, "Ref": reg.Addr + "/" + repoName, "Hold": hold, "Ready": ready})
			before := reg.UploadBytes()
			testutil.KillChild(t, "TestPushChild", env, 2*time.Minute, func() bool {
				if hold == "" {
					return reg.UploadBytes() > before+32<<20 // mid-upload of the large blob
				}
				_, err := os.Stat(ready)
				return err == nil
			})
			got := tags(t, reg.Addr, repoName)
			for _, tag := range got {
				require.NotRegexp(t, `^1\.0\.0(-1)?$`, tag, "a killed push set a build tag")
			}
			requireTagsComplete(t, reg.Addr, repoName)
			res, err := Push(context.Background(), dir, ref(t, reg.Addr+"/"+repoName), Options{}, false)
			require.NoError(t, err)
			require.Equal(t, []string{"1.0.0-1", "1.0.0"}, res.Tags)
			requireTagsComplete(t, reg.Addr, repoName)
		})
	}
}

// A pull SIGKILLed while it downloads a disk publishes nothing; the next
// pull sweeps its staging directory and publishes the build.
func TestPullKilledPublishesNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("pulls 256 MiB twice")
	}
	reg := testutil.StartRegistry(t, "", "")
	dir := bigBuild(t, 256<<20)
	_, err := Push(context.Background(), dir, ref(t, reg.Addr+"/web"), Options{}, false)
	require.NoError(t, err)
	root := t.TempDir()
	env := childJob(t, map[string]string{"Op": "pull", "Ref": reg.Addr + "/web:1.0.0", "Root": root})
	testutil.KillChild(t, "TestPushChild", env, 2*time.Minute, func() bool {
		partial, _ := filepath.Glob(filepath.Join(root, ".staging", "build-*", "artifact", "web.qcow2"))
		for _, p := range partial {
			if fi, err := os.Stat(p); err == nil && fi.Size() > 32<<20 {
				return true
			}
		}
		return false
	})
	builds, err := catalog.List(root, "")
	require.NoError(t, err)
	require.Empty(t, builds, "a killed pull published nothing")
	p, err := Pull(context.Background(), ref(t, reg.Addr+"/web:1.0.0"), root, Options{}, time.Now())
	require.NoError(t, err)
	sameFiles(t, dir, p.Entry.Dir)
	left, _ := os.ReadDir(filepath.Join(root, ".staging"))
	require.Empty(t, left, "the killed pull's staging directory was swept")
}

// requireTagsComplete checks that every tag of the repository points at a
// manifest whose config and layers the registry has, with their sizes.
func requireTagsComplete(t *testing.T, addr, repoName string) {
	t.Helper()
	ctx := context.Background()
	repo, err := repository(ref(t, addr+"/"+repoName), Options{})
	require.NoError(t, err)
	for _, tag := range tags(t, addr, repoName) {
		if strings.HasPrefix(tag, "sha256-") {
			continue // a referrers index
		}
		_, man, err := fetchManifest(ctx, repo, tag)
		require.NoError(t, err, tag)
		for _, d := range append(man.Layers, man.Config) {
			got, err := repo.Blobs().Resolve(ctx, d.Digest.String())
			require.NoError(t, err, "%s: blob %s", tag, d.Digest)
			require.Equal(t, d.Size, got.Size, "%s: blob %s", tag, d.Digest)
		}
	}
}

// bigBuild is a fake build web/1.0.0/1 whose web.qcow2 is size bytes
// (writeBig), its manifest.json saying so.
func bigBuild(t *testing.T, size int64) string {
	t.Helper()
	dir := fakeBuild(t, t.TempDir(), "web", "1.0.0", 1, 1)
	writeBig(t, filepath.Join(dir, "web.qcow2"), size)
	rewriteOutputSum(t, dir, "web.qcow2")
	return dir
}

// writeBig writes a file of size bytes: random megabytes every 16 MiB,
// holes between, as a mostly empty disk is.
func writeBig(t *testing.T, path string, size int64) {
	t.Helper()
	f, err := os.Create(path)
	require.NoError(t, err)
	defer f.Close()
	require.NoError(t, f.Truncate(size))
	chunk := testutil.Binaries(t, 1<<20)
	for off := int64(0); off < size; off += 16 << 20 {
		_, err := f.WriteAt(chunk, off)
		require.NoError(t, err)
	}
}

// rewriteOutputSum records an output's new sha256 and size in manifest.json.
func rewriteOutputSum(t *testing.T, dir, file string) {
	t.Helper()
	m, err := manifest.Read(dir)
	require.NoError(t, err)
	for i := range m.Outputs {
		if m.Outputs[i].File == file {
			m.Outputs[i].SHA256 = testutil.FileSHA256(t, filepath.Join(dir, file))
			fi, err := os.Stat(filepath.Join(dir, file))
			require.NoError(t, err)
			m.Outputs[i].Size = fi.Size()
		}
	}
	require.NoError(t, m.Write(dir))
}

// Large disks stream: a push and a pull of a build with a 768 MiB output
// each run in a process whose peak resident memory stays under 64 MiB.
func TestPushAndPullStreamInBoundedMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("pushes and pulls 768 MiB")
	}
	reg := testutil.StartRegistry(t, "", "")
	dir := bigBuild(t, 768<<20)
	root := t.TempDir()
	for _, job := range []map[string]string{
		{"Op": "push", "Dir": dir, "Ref": reg.Addr + "/big"},
		{"Op": "pull", "Ref": reg.Addr + "/big:1.0.0-1", "Root": root},
	} {
		cmd := exec.Command(os.Args[0], "-test.run=^TestPushChild$")
		cmd.Env = append(os.Environ(), childJob(t, job)...)
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, string(out))
		maxRSS := cmd.ProcessState.SysUsage().(*syscall.Rusage).Maxrss << 10 // KiB
		t.Logf("%s of a 768 MiB disk: peak RSS %d MiB", job["Op"], maxRSS>>20)
		require.Less(t, maxRSS, int64(64<<20), "%s: peak resident memory", job["Op"])
	}
	sameFiles(t, dir, filepath.Join(root, "web", "1.0.0", "1"))
}

// The containerDisk is a container image KubeVirt can run: an OCI image
// manifest and config whose rootfs diff_ids name its one tar layer, which
// holds disk/NAME.qcow2 (the build's qcow2, byte for byte) owned by
// 107:107 and readable; skopeo, an independent client, copies it to an
// OCI layout.
func TestContainerDisk(t *testing.T) {
	reg := testutil.StartRegistry(t, "", "")
	dir := fakeBuild(t, t.TempDir(), "web", "1.0.0", 2, 1)
	res, err := Push(context.Background(), dir, ref(t, reg.Addr+"/web"), Options{}, true)
	require.NoError(t, err)
	require.Equal(t, "1.0.0-2-containerdisk", res.ContainerDisk.Tag)
	again, err := Push(context.Background(), dir, ref(t, reg.Addr+"/web"), Options{}, true)
	require.NoError(t, err)
	require.Equal(t, res.ContainerDisk.Digest, again.ContainerDisk.Digest, "reproducible")

	repo, err := repository(ref(t, reg.Addr+"/web"), Options{})
	require.NoError(t, err)
	_, man, err := fetchManifest(context.Background(), repo, "1.0.0-2-containerdisk")
	require.NoError(t, err)
	require.Equal(t, "application/vnd.oci.image.layer.v1.tar", man.Layers[0].MediaType, "pushed uncompressed")
	require.Empty(t, man.ArtifactType, "a container image, not an artifact")

	testutil.Require(t, "skopeo")
	layout := filepath.Join(t.TempDir(), "layout")
	testutil.Run(t, "skopeo", "copy", "--src-tls-verify=false", "docker://"+reg.Addr+"/web:1.0.0-2-containerdisk", "oci:"+layout+":cd")
	qcow2 := testutil.ContainerDiskLayout(t, layout, "cd", "web")
	require.Equal(t, testutil.FileSHA256(t, filepath.Join(dir, "web.qcow2")), qcow2)

	// A build without a qcow2 has no containerDisk: nothing is pushed.
	noQcow := fakeBuild(t, t.TempDir(), "web", "1.0.0", 3, 3)
	m, err := manifest.Read(noQcow)
	require.NoError(t, err)
	m.Outputs = m.Outputs[:1]
	require.NoError(t, m.Write(noQcow))
	_, err = Push(context.Background(), noQcow, ref(t, reg.Addr+"/noqcow"), Options{}, true)
	require.ErrorContains(t, err, "has no qcow2 output")
	require.Empty(t, tags(t, reg.Addr, "noqcow"))

	// It is not a Kiln build: pull says which tag to pull.
	_, err = Pull(context.Background(), ref(t, reg.Addr+"/web:1.0.0-2-containerdisk"), t.TempDir(), Options{}, time.Now())
	require.ErrorContains(t, err, "containerDisk image of web/1.0.0/2; pull the tag 1.0.0-2 instead")
}
