package testutil

import (
	"archive/tar"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/bcrypt"
)

// Registry is a real OCI registry for a test: Debian's docker-registry
// (distribution 2.8) on a free loopback port, with a config of its own and
// its storage in a temporary directory, stopped when the test ends. It has
// no referrers API, so clients fall back to the referrers tag schema.
type Registry struct {
	Addr    string // 127.0.0.1:PORT
	Storage string // its storage root directory
	Log     string // its log file
}

// StartRegistry starts a registry. With user set, it takes only that user
// with that password (htpasswd, bcrypt); else it has no authentication.
// Deletes are enabled.
func StartRegistry(t testing.TB, user, password string) *Registry {
	t.Helper()
	Require(t, "docker-registry")
	dir := t.TempDir()
	r := &Registry{Storage: filepath.Join(dir, "storage"), Log: filepath.Join(dir, "registry.log")}
	auth := ""
	if user != "" {
		hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		htpasswd := filepath.Join(dir, "htpasswd")
		if err := os.WriteFile(htpasswd, []byte(user+":"+string(hash)+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		auth = fmt.Sprintf("auth:\n  htpasswd:\n    realm: kiln-test\n    path: %s\n", htpasswd)
	}
	for attempt := 0; ; attempt++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		r.Addr = l.Addr().String()
		l.Close()
		config := filepath.Join(dir, "config.yml")
		text := fmt.Sprintf("version: 0.1\nlog:\n  level: info\nstorage:\n  filesystem:\n    rootdirectory: %s\n  delete:\n    enabled: true\nhttp:\n  addr: %s\n  secret: kiln-test\n%s",
			r.Storage, r.Addr, auth)
		if err := os.WriteFile(config, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		logf, err := os.Create(r.Log)
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command("docker-registry", "serve", config)
		cmd.Stdout, cmd.Stderr = logf, logf
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		logf.Close()
		exited := make(chan struct{})
		go func() { _ = cmd.Wait(); close(exited) }()
		stop := func() {
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
		}
		if r.waitReady(exited) {
			t.Cleanup(stop)
			return r
		}
		stop()
		log, _ := os.ReadFile(r.Log)
		if attempt == 2 || !strings.Contains(string(log), "address already in use") {
			t.Fatalf("docker-registry serve %s did not start:\n%s", config, log)
		}
	}
}

// waitReady waits until the registry answers /v2/ (200, or 401 with
// authentication), for at most 10 seconds, or until it exited.
func (r *Registry) waitReady(exited chan struct{}) bool {
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		select {
		case <-exited:
			return false
		default:
		}
		resp, err := http.Get("http://" + r.Addr + "/v2/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusUnauthorized {
				return true
			}
		}
	}
	return false
}

// UploadBytes is how many bytes the registry holds in unfinished blob
// uploads of all repositories: a push in progress.
func (r *Registry) UploadBytes() int64 {
	var n int64
	_ = filepath.Walk(filepath.Join(r.Storage, "docker/registry/v2/repositories"), func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() && strings.Contains(p, "/_uploads/") && fi.Name() == "data" {
			n += fi.Size()
		}
		return nil
	})
	return n
}

// ContainerDiskLayout reads the image tagged tag in an OCI layout
// directory as a container runtime would, checks it is a containerDisk of
// the image name, and returns the sha256 of the disk it holds.
func ContainerDiskLayout(t testing.TB, layout, tag, name string) string {
	t.Helper()
	readJSON := func(digest string, v any) {
		data, err := os.ReadFile(filepath.Join(layout, "blobs", "sha256", strings.TrimPrefix(digest, "sha256:")))
		require.NoError(t, err)
		require.NoError(t, json.Unmarshal(data, v))
	}
	var index struct {
		Manifests []struct {
			Digest      string
			Annotations map[string]string
		}
	}
	data, err := os.ReadFile(filepath.Join(layout, "index.json"))
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(data, &index))
	var man struct {
		MediaType string
		Config    struct{ MediaType, Digest string }
		Layers    []struct {
			MediaType, Digest string
			Size              int64
		}
	}
	for _, m := range index.Manifests {
		if m.Annotations["org.opencontainers.image.ref.name"] == tag {
			readJSON(m.Digest, &man)
		}
	}
	require.Equal(t, "application/vnd.oci.image.manifest.v1+json", man.MediaType)
	require.Equal(t, "application/vnd.oci.image.config.v1+json", man.Config.MediaType)
	require.Len(t, man.Layers, 1, "FROM scratch: one layer")
	var config struct {
		Architecture, OS string
		RootFS           struct {
			Type    string
			DiffIDs []string `json:"diff_ids"`
		}
	}
	readJSON(man.Config.Digest, &config)
	require.Equal(t, "linux", config.OS)
	require.Equal(t, "amd64", config.Architecture)
	require.Equal(t, "layers", config.RootFS.Type)
	require.Len(t, config.RootFS.DiffIDs, 1)

	// The layer, as the copy left it (a copy may compress it): its
	// uncompressed tar must hash to the config's diff_id.
	f, err := os.Open(filepath.Join(layout, "blobs", "sha256", strings.TrimPrefix(man.Layers[0].Digest, "sha256:")))
	require.NoError(t, err)
	defer f.Close()
	var layer io.Reader = f
	switch man.Layers[0].MediaType {
	case "application/vnd.oci.image.layer.v1.tar":
	case "application/vnd.oci.image.layer.v1.tar+gzip":
		zr, err := gzip.NewReader(f)
		require.NoError(t, err)
		layer = zr
	default:
		t.Fatalf("layer media type %s", man.Layers[0].MediaType)
	}
	diff := sha256.New()
	layer = io.TeeReader(layer, diff)
	defer func() {
		_, _ = io.Copy(io.Discard, layer)
		require.Equal(t, config.RootFS.DiffIDs[0], "sha256:"+hex.EncodeToString(diff.Sum(nil)), "the config's diff_id is the uncompressed layer's digest")
	}()
	tr := tar.NewReader(layer)
	var names []string
	sum := ""
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		require.NoError(t, err)
		names = append(names, h.Name)
		require.Equal(t, 107, h.Uid, h.Name)
		require.Equal(t, 107, h.Gid, h.Name)
		if h.Typeflag == tar.TypeReg {
			require.Equal(t, "disk/"+name+".qcow2", h.Name)
			require.NotZero(t, h.Mode&0o400, "readable by its owner, 107")
			tmp := filepath.Join(t.TempDir(), "disk.qcow2")
			out, err := os.Create(tmp)
			require.NoError(t, err)
			_, err = io.Copy(out, tr)
			require.NoError(t, err)
			require.NoError(t, out.Close())
			sum = FileSHA256(t, tmp)
		}
	}
	require.Equal(t, []string{"disk/", "disk/" + name + ".qcow2"}, names)
	return sum
}
