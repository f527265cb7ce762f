package oci

import (
	"context"
	"crypto/sha256"
	b64 "encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kiln-build/kiln/catalog"
	"github.com/kiln-build/kiln/internal/testutil"
	"github.com/kiln-build/kiln/manifest"
)

var buildCreated = time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)

// fakeBuild publishes a build of name/version/build into the catalog root
// the way the builder lays one out: a zstd raw image and a qcow2 (random
// bytes from seed: the registry does not look inside), manifest.json with
// their sha256, tests.xml, build.log, the catalog state, and the SBOM and
// provenance files of the supply-chain stage. It returns its directory.
func fakeBuild(t *testing.T, root, name, version string, build int, seed int64) string {
	t.Helper()
	dir := filepath.Join(root, name, version, strconv.Itoa(build))
	require.NoError(t, os.MkdirAll(dir, 0o755))
	rng := rand.New(rand.NewSource(seed))
	m := &manifest.Manifest{SchemaVersion: manifest.SchemaVersion, Name: name, Version: version, Build: build, Created: buildCreated, KilnVersion: "test"}
	for _, o := range []manifest.Output{{File: name + ".raw.zst", Format: "raw", Compression: "zstd"}, {File: name + ".qcow2", Format: "qcow2"}} {
		data := make([]byte, 200<<10+rng.Intn(1000))
		rng.Read(data)
		require.NoError(t, os.WriteFile(filepath.Join(dir, o.File), data, 0o644))
		sum := sha256.Sum256(data)
		o.SHA256, o.Size = hex.EncodeToString(sum[:]), int64(len(data))
		m.Outputs = append(m.Outputs, o)
	}
	require.NoError(t, m.Write(dir))
	for file, text := range map[string]string{
		"tests.xml": "<testsuites/>\n", "build.log": fmt.Sprintf("build %d of seed %d\n", build, seed),
		"sbom.spdx.json":       `{"spdxVersion":"SPDX-2.3","name":"` + name + `"}`,
		"provenance.dsse.json": `{"payloadType":"application/vnd.in-toto+json","payload":"e30=","signatures":[]}`,
	} {
		require.NoError(t, os.WriteFile(filepath.Join(dir, file), []byte(text), 0o644))
	}
	require.NoError(t, catalog.WriteInitialState(dir, manifest.Catalog{}, buildCreated))
	return dir
}

// tags lists a repository's tags with the registry's HTTP API.
func tags(t *testing.T, addr, repo string) []string {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/v2/" + repo + "/tags/list")
	require.NoError(t, err)
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		return nil
	}
	require.Equal(t, http.StatusOK, resp.StatusCode)
	var v struct{ Tags []string }
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&v))
	sort.Strings(v.Tags)
	return v.Tags
}

func ref(t *testing.T, s string) Ref {
	t.Helper()
	r, err := ParseRef(s)
	require.NoError(t, err)
	return r
}

// sameFiles checks that two build directories hold the same files, byte
// for byte, but for the catalog state.
func sameFiles(t *testing.T, want, got string) {
	t.Helper()
	list := func(dir string) map[string]string {
		out := map[string]string{}
		require.NoError(t, filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
			require.NoError(t, err)
			if fi.Mode().IsRegular() && fi.Name() != catalog.StateFile {
				rel, _ := filepath.Rel(dir, p)
				out[rel] = testutil.FileSHA256(t, p)
			}
			return nil
		}))
		return out
	}
	require.Equal(t, list(want), list(got))
}

func TestParseRef(t *testing.T) {
	for in, want := range map[string]Ref{
		"oci://127.0.0.1:5000/images/web":       {Registry: "127.0.0.1:5000", Repository: "images/web"},
		"127.0.0.1:5000/web:1.0.0-3":            {Registry: "127.0.0.1:5000", Repository: "web", Tag: "1.0.0-3"},
		"localhost/a/b/c:1.0.0":                 {Registry: "localhost", Repository: "a/b/c", Tag: "1.0.0"},
		"registry.example/web@sha256:" + z64():  {Registry: "registry.example", Repository: "web", Digest: "sha256:" + z64()},
		"oci://[::1]:5000/web:1.0.0":            {Registry: "[::1]:5000", Repository: "web", Tag: "1.0.0"},
		"registry.example:443/team/web:1.2.0-7": {Registry: "registry.example:443", Repository: "team/web", Tag: "1.2.0-7"},
	} {
		got, err := ParseRef(in)
		require.NoError(t, err, in)
		require.Equal(t, want, got, in)
	}
	for _, bad := range []string{"web", "oci://web", "127.0.0.1:5000/Web", "127.0.0.1:5000/web:", "127.0.0.1:5000/web@sha256:12"} {
		_, err := ParseRef(bad)
		require.Error(t, err, bad)
		require.Contains(t, err.Error(), "REGISTRY/REPOSITORY[:TAG]", bad)
	}
}

func z64() string { return strings.Repeat("0", 64) }

// Plain HTTP goes to loopback registries only, unless asked for.
func TestPlainHTTPOnlyForLoopback(t *testing.T) {
	for host, loop := range map[string]bool{
		"127.0.0.1:5000": true, "127.1.2.3": true, "localhost:5000": true, "localhost": true, "[::1]:5000": true,
		"registry.example:5000": false, "10.0.0.1:5000": false, "localhost.example": false, "[::2]:5000": false,
	} {
		require.Equal(t, loop, IsLoopback(host), host)
		repo, err := repository(Ref{Registry: host, Repository: "web"}, Options{})
		require.NoError(t, err)
		require.Equal(t, loop, repo.PlainHTTP, host)
		repo, err = repository(Ref{Registry: host, Repository: "web"}, Options{PlainHTTP: true})
		require.NoError(t, err)
		require.True(t, repo.PlainHTTP, host)
	}
}

// A build pushed to Debian's docker-registry is pulled back into an empty
// catalog exactly as it was: the same files byte for byte (manifest.json
// included), its SBOM and provenance restored from referrers found through
// the sha256-<digest> tag (the registry has no referrers API). Pushed
// again, or to another repository, it has the same manifest digest and
// sends no blob; the manifest is dated by the build, not by the push.
func TestPushPullRoundTrip(t *testing.T) {
	ctx := context.Background()
	reg := testutil.StartRegistry(t, "", "")
	src := t.TempDir()
	dir := fakeBuild(t, src, "web", "1.2.0", 3, 1)

	res, err := Push(ctx, dir, ref(t, "oci://"+reg.Addr+"/images/web"), Options{}, false)
	require.NoError(t, err)
	require.Equal(t, "1.2.0-3", res.Tag)
	require.Equal(t, []string{"1.2.0-3", "1.2.0"}, res.Tags)
	require.Equal(t, []string{"sbom.spdx.json", "provenance.dsse.json"}, res.Referrers)
	require.Equal(t, 6, res.Uploaded, "two disks, manifest.json, build.log, tests.xml and the empty config")
	digestHex := strings.TrimPrefix(res.Digest, "sha256:")
	require.Equal(t, []string{"1.2.0", "1.2.0-3", "1.2.0-3." + digestHex[:16], "sha256-" + digestHex}, tags(t, reg.Addr, "images/web"),
		"the build's tags, its claim and the referrers tag schema's index")

	// The artifact as a registry client sees it.
	repo, err := repository(ref(t, reg.Addr+"/images/web"), Options{})
	require.NoError(t, err)
	_, man, err := fetchManifest(ctx, repo, "1.2.0-3")
	require.NoError(t, err)
	require.Equal(t, ArtifactType, man.ArtifactType)
	require.Equal(t, "application/vnd.oci.empty.v1+json", man.Config.MediaType)
	var types, titles []string
	for _, l := range man.Layers {
		types = append(types, l.MediaType)
		titles = append(titles, l.Annotations["org.opencontainers.image.title"])
	}
	require.Equal(t, []string{"application/vnd.kiln.disk.raw+zstd", "application/x-qemu-qcow2", MediaTypeManifest, "text/plain", "application/xml"}, types)
	require.Equal(t, []string{"web.raw.zst", "web.qcow2", "manifest.json", "build.log", "tests.xml"}, titles)
	require.Equal(t, map[string]string{
		"org.opencontainers.image.created": "2026-11-30T12:00:00Z", "org.opencontainers.image.title": "web", "org.opencontainers.image.version": "1.2.0",
		AnnotationName: "web", AnnotationVersion: "1.2.0", AnnotationBuild: "3",
	}, man.Annotations)

	// Reproducible: the same build gives the same manifest, sends nothing.
	again, err := Push(ctx, dir, ref(t, "oci://"+reg.Addr+"/images/web"), Options{}, false)
	require.NoError(t, err)
	require.Equal(t, res.Digest, again.Digest)
	require.Zero(t, again.Uploaded)
	other, err := Push(ctx, dir, ref(t, "oci://"+reg.Addr+"/mirror/web"), Options{}, false)
	require.NoError(t, err)
	require.Equal(t, res.Digest, other.Digest)

	// Pulled into an empty catalog: the same build.
	dest := t.TempDir()
	p, err := Pull(ctx, ref(t, "oci://"+reg.Addr+"/images/web:1.2.0"), dest, Options{}, time.Now())
	require.NoError(t, err)
	require.True(t, p.Received)
	require.Equal(t, res.Digest, p.Digest)
	require.Equal(t, "web/1.2.0/3", p.Entry.ID())
	require.Equal(t, []string{"sbom.spdx.json", "provenance.dsse.json"}, p.Referrers)
	sameFiles(t, dir, p.Entry.Dir)
	st, err := catalog.ReadState(p.Entry.Dir)
	require.NoError(t, err)
	require.Equal(t, "pull", st.History[len(st.History)-1].Action)
	require.Contains(t, st.History[len(st.History)-1].Detail, reg.Addr+"/images/web@"+res.Digest)
	left, _ := os.ReadDir(filepath.Join(dest, ".staging"))
	require.Empty(t, left, "no staging directory is left")
	// Pulling it again changes nothing; a digest reference works too.
	p, err = Pull(ctx, ref(t, reg.Addr+"/images/web@"+res.Digest), dest, Options{}, time.Now())
	require.NoError(t, err)
	require.False(t, p.Received)

	// A different build under the same number in the catalog is refused.
	clash := t.TempDir()
	fakeBuild(t, clash, "web", "1.2.0", 3, 2)
	_, err = Pull(ctx, ref(t, reg.Addr+"/images/web:1.2.0-3"), clash, Options{}, time.Now())
	require.ErrorContains(t, err, "already holds a different web/1.2.0/3")

	// Not a Kiln build, or no such tag: clear errors.
	_, err = Pull(ctx, ref(t, reg.Addr+"/images/web:sha256-"+digestHex), t.TempDir(), Options{}, time.Now())
	require.ErrorContains(t, err, "not an OCI image manifest")
	_, err = Pull(ctx, ref(t, reg.Addr+"/images/web:9.9.9"), t.TempDir(), Options{}, time.Now())
	require.ErrorIs(t, err, ErrNotFound)
}

// A damaged output (its bytes no longer hash to what manifest.json
// records) is never pushed: the push fails naming the file, and no tag is
// written.
func TestPushRefusesDamagedOutput(t *testing.T) {
	reg := testutil.StartRegistry(t, "", "")
	dir := fakeBuild(t, t.TempDir(), "web", "1.0.0", 1, 1)
	f, err := os.OpenFile(filepath.Join(dir, "web.qcow2"), os.O_WRONLY, 0)
	require.NoError(t, err)
	_, err = f.WriteAt([]byte("damage"), 1000)
	require.NoError(t, err)
	require.NoError(t, f.Close())
	_, err = Push(context.Background(), dir, ref(t, reg.Addr+"/web"), Options{}, false)
	require.ErrorContains(t, err, "web.qcow2: sha256 ")
	require.ErrorContains(t, err, "the build is damaged")
	require.Empty(t, tags(t, reg.Addr, "web"))
}

// Credentials come from $REGISTRY_AUTH_FILE (Podman's auth.json) and from
// Docker's config.json; without them, a registry with authentication
// refuses the push.
func TestPushWithCredentials(t *testing.T) {
	reg := testutil.StartRegistry(t, "builder", "s3cret")
	dir := fakeBuild(t, t.TempDir(), "web", "1.0.0", 1, 1)
	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("DOCKER_CONFIG", filepath.Join(home, ".docker"))
	t.Setenv("REGISTRY_AUTH_FILE", "")
	t.Setenv("XDG_RUNTIME_DIR", "")
	_, err := Push(context.Background(), dir, ref(t, reg.Addr+"/web"), Options{}, false)
	require.ErrorContains(t, err, "the registry wants credentials: log in with docker login or podman login")

	authJSON := func(path, password string) {
		auth := b64.StdEncoding.EncodeToString([]byte("builder:" + password))
		require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o700))
		require.NoError(t, os.WriteFile(path, []byte(`{"auths":{"`+reg.Addr+`":{"auth":"`+auth+`"}}}`), 0o600))
	}
	podman := filepath.Join(t.TempDir(), "auth.json")
	authJSON(podman, "s3cret")
	t.Setenv("REGISTRY_AUTH_FILE", podman)
	res, err := Push(context.Background(), dir, ref(t, reg.Addr+"/web"), Options{}, false)
	require.NoError(t, err)

	t.Setenv("REGISTRY_AUTH_FILE", "")
	authJSON(filepath.Join(home, ".docker", "config.json"), "s3cret")
	p, err := Pull(context.Background(), ref(t, reg.Addr+"/web:1.0.0-1"), t.TempDir(), Options{}, time.Now())
	require.NoError(t, err)
	require.Equal(t, res.Digest, p.Digest)

	// The Podman file comes first.
	authJSON(podman, "wrong")
	t.Setenv("REGISTRY_AUTH_FILE", podman)
	_, err = Pull(context.Background(), ref(t, reg.Addr+"/web:1.0.0-1"), t.TempDir(), Options{}, time.Now())
	require.Error(t, err)
}
