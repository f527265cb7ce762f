package testutil

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

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
