package builder

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kiln-build/kiln/base"
	"github.com/kiln-build/kiln/internal/progress"
	"github.com/kiln-build/kiln/manifest"
	"github.com/kiln-build/kiln/recipes"
)

func TestResolveSourceDate(t *testing.T) {
	tree := t.TempDir()
	old := time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)
	for name, at := range map[string]time.Time{"a": old.Add(-time.Hour), "b": old, "future": time.Now().Add(48 * time.Hour)} {
		p := filepath.Join(tree, name)
		require.NoError(t, os.WriteFile(p, []byte(name), 0o644))
		require.NoError(t, os.Chtimes(p, at, at))
	}
	release := time.Date(2026, 12, 6, 8, 17, 29, 0, time.UTC)
	deb := &base.Result{ReleaseDate: release, ReleaseURL: "http://m.invalid/debian/dists/trixie/InRelease"}

	sd, err := resolveSourceDate(1700000000, tree, deb, nil)
	require.NoError(t, err)
	require.Equal(t, manifest.SourceDate{Epoch: 1700000000, Time: time.Unix(1700000000, 0).UTC(), From: manifest.SourceDateEnv, Detail: "SOURCE_DATE_EPOCH=1700000000"}, sd)

	sd, err = resolveSourceDate(0, tree, deb, nil)
	require.NoError(t, err)
	require.Equal(t, release.Unix(), sd.Epoch)
	require.Equal(t, manifest.SourceDateDebian, sd.From)
	require.Equal(t, "Date of http://m.invalid/debian/dists/trixie/InRelease", sd.Detail)

	// A Debian base whose date is unknown, and a disk file: the newest file,
	// ignoring one dated in the future.
	for _, args := range []struct {
		deb    *base.Result
		parent *manifest.Parent
	}{{&base.Result{}, nil}, {nil, &manifest.Parent{Kind: "file", Path: "/x.raw"}}} {
		sd, err = resolveSourceDate(0, tree, args.deb, args.parent)
		require.NoError(t, err)
		require.Equal(t, old.Unix(), sd.Epoch)
		require.Equal(t, manifest.SourceDateTree, sd.From)
	}

	// An image base: the parent's source date.
	pdir := t.TempDir()
	pm := &manifest.Manifest{SchemaVersion: manifest.SchemaVersion, Name: "p", SourceDate: manifest.SourceDate{Epoch: 1600000000}}
	require.NoError(t, pm.Write(pdir))
	parent := &manifest.Parent{Kind: "image", Name: "p", Version: "1.0.0", Build: 2, Path: filepath.Join(pdir, "p.raw.zst")}
	sd, err = resolveSourceDate(0, tree, nil, parent)
	require.NoError(t, err)
	require.Equal(t, int64(1600000000), sd.Epoch)
	require.Equal(t, manifest.SourceDateParent, sd.From)
	require.Equal(t, "source date of p/1.0.0/2", sd.Detail)
}

func TestSensitiveValues(t *testing.T) {
	r := &recipes.Recipe{Variables: map[string]any{"pw": "hunter22", "keys": []any{"k1-secret", map[string]any{"x": "deep-secret"}}, "n": int64(1234), "open": "visible"},
		Sensitive: map[string]bool{"pw": true, "keys": true, "n": true}}
	require.Equal(t, map[string]string{"pw": "hunter22", "keys[0]": "k1-secret", "keys[1].x": "deep-secret", "n": "1234"}, r.SensitiveValues())
	red := newRedactor(r)
	require.Equal(t, "a (sensitive) b (sensitive) visible", red.String("a hunter22 b deep-secret visible"))
}

func lintState(t *testing.T, r *recipes.Recipe, files map[string]string) (*state, *bytes.Buffer) {
	tree := t.TempDir()
	for p, data := range files {
		require.NoError(t, os.MkdirAll(filepath.Join(tree, filepath.Dir(p)), 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(tree, p), []byte(data), 0o600))
	}
	var log bytes.Buffer
	return &state{recipe: r, img: r.Image, tree: tree, m: &manifest.Manifest{}, log: &log}, &log
}

func TestStageLint(t *testing.T) {
	r := &recipes.Recipe{Variables: map[string]any{"token": "tok-0123456789", "pin": "1234"}, Sensitive: map[string]bool{"token": true, "pin": true}}
	r.Image.Lint.Allow = []string{"/etc/app/allowed.conf"}
	key := "-----BEGIN OPENSSH PRIVATE KEY-----\n" + string(bytes.Repeat([]byte("QUJD"), 40)) + "\n-----END OPENSSH PRIVATE KEY-----\n"
	s, log := lintState(t, r, map[string]string{
		"root/.ssh/id_ed25519": key, "etc/app/token.conf": "token=tok-0123456789\n", "etc/app/allowed.conf": "tok-0123456789", "etc/motd": "hello",
	})
	_, err := stageLint(context.Background(), s)
	require.EqualError(t, err, `the image holds 2 secret(s):
  /etc/app/token.conf: value of sensitive variable "token"
  /root/.ssh/id_ed25519: OpenSSH private key
remove them in a build step, or accept a path in the image block: lint { allow = ["/etc/app/token.conf"] }`)
	require.Equal(t, []manifest.LintFinding{{Path: "/etc/app/allowed.conf", What: `value of sensitive variable "token"`}}, s.m.Lint.Allowed)
	require.Contains(t, log.String(), "var.pin is shorter than 8 characters")
	require.NotContains(t, log.String(), "tok-0123456789")

	clean, _ := lintState(t, r, map[string]string{"etc/motd": "hello"})
	note, err := stageLint(context.Background(), clean)
	require.NoError(t, err)
	require.Equal(t, "1 files, 0 allowed", note)
	require.Equal(t, manifest.Lint{Allow: []string{"/etc/app/allowed.conf"}, Allowed: []manifest.LintFinding{}, Files: 1}, clean.m.Lint)
}

// Under --on-error=ask the lint can run again: after the person removed
// the secret in a shell, the retry reads the tree again and passes.
func TestStageLintRetriedAfterShell(t *testing.T) {
	r := &recipes.Recipe{}
	key := "-----BEGIN OPENSSH PRIVATE KEY-----\n" + string(bytes.Repeat([]byte("QUJD"), 40)) + "\n-----END OPENSSH PRIVATE KEY-----\n"
	s, _ := lintState(t, r, map[string]string{"root/.ssh/id_ed25519": key, "etc/motd": "hello"})
	var asked []Paused
	s.opts = Options{OnError: OnErrorAsk, Progress: progress.Quiet{}, Ask: func(_ context.Context, p Paused) Decision {
		asked = append(asked, p)
		require.NoError(t, os.Remove(filepath.Join(p.Tree, "root/.ssh/id_ed25519"))) // what the shell did
		return Retry
	}}
	var lint stage
	for _, st := range stages {
		if st.name == "lint" {
			lint = st
		}
	}
	note, _, err := s.runStage(context.Background(), lint, "lint")
	require.NoError(t, err)
	require.Equal(t, "1 files, 0 allowed", note)
	require.Len(t, asked, 1)
	require.True(t, asked[0].CanRetry)
	require.ErrorContains(t, asked[0].Err, "/root/.ssh/id_ed25519: OpenSSH private key")
	require.Equal(t, 1, s.m.Lint.Files)
}

// A sensitive value that reached the manifest another way than the
// variables (a component parameter, a test's output) is hidden there.
func TestRedactRecord(t *testing.T) {
	r := &recipes.Recipe{Variables: map[string]any{"pw": "hunter22<&>"}, Sensitive: map[string]bool{"pw": true}}
	s := &state{redactor: newRedactor(r), m: &manifest.Manifest{SchemaVersion: manifest.SchemaVersion, Name: "x",
		Components: []manifest.Component{{Name: "user", Parameters: map[string]any{"password": "hunter22<&>"}}},
		Tests:      []manifest.TestResult{{Name: "t", Output: "echo hunter22<&>\nhunter22<&>\n"}}}}
	require.NoError(t, s.redactRecord())
	require.Equal(t, "(sensitive)", s.m.Components[0].Parameters["password"])
	require.Equal(t, "echo (sensitive)\n(sensitive)\n", s.m.Tests[0].Output)
	data, _ := s.m.Encode()
	require.NotContains(t, string(data), "hunter22")
}
