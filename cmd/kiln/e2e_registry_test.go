package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kiln-build/kiln/builder"
	"github.com/kiln-build/kiln/catalog"
	"github.com/kiln-build/kiln/components"
	"github.com/kiln-build/kiln/internal/testutil"
	"github.com/kiln-build/kiln/manifest"
	"github.com/kiln-build/kiln/recipes"
)

// The registry end to end, on Debian's docker-registry, with the shared
// debian-minimal build (no boot of its own) and one booted child:
//   - kiln images push --containerdisk; pushed again, the same digest;
//   - oras, an independent client, pulls the artifact: the disks' bytes
//     match manifest.json's sha256; skopeo copies the containerDisk, whose
//     layer holds disk/debian-minimal.qcow2 (the qcow2's bytes), 107:107;
//   - kiln images pull into an empty catalog: images show --manifest
//     prints the same manifest;
//   - a recipe with base "oci" on the pushed tag builds, boots and passes
//     its guest tests, its parent recorded with the artifact's digest;
//     --if-changed is up to date until the tag moves;
//   - two kiln processes push builds 2 and 3 of the version from two
//     catalogs at once: both land, VERSION ends at 3;
//   - a kiln images push SIGKILLed while a disk uploads leaves no tag; the
//     next push completes.
func TestE2ERegistry(t *testing.T) {
	requireE2E(t)
	testutil.Require(t, "docker-registry", "skopeo", "oras")
	m, dir := sharedMinimal(t)
	reg := testutil.StartRegistry(t, "", "")
	repo := "oci://" + reg.Addr + "/images/debian-minimal"
	id := fmt.Sprintf("%s@%s/%d", m.Name, m.Version, m.Build)

	type pushResult struct {
		Digest        string
		Tags          []string
		Uploaded      int
		ContainerDisk struct{ Tag, Digest string }
	}
	push := func(images, ref string, extra ...string) pushResult {
		t.Helper()
		code, out, errOut := runKiln(t, append(append([]string{"images", "push", "--json", "--images", images}, extra...), ref, repo)...)
		require.Equal(t, 0, code, "stdout:\n%s\nstderr:\n%s", out, errOut)
		var r pushResult
		require.NoError(t, json.Unmarshal([]byte(out), &r))
		return r
	}
	first := push(sharedRoot(), id, "--containerdisk")
	require.Equal(t, []string{"1.0.0-1", "1.0.0"}, first.Tags)
	require.Equal(t, "1.0.0-1-containerdisk", first.ContainerDisk.Tag)
	again := push(sharedRoot(), id, "--containerdisk")
	require.Equal(t, first.Digest, again.Digest, "a push is reproducible")
	require.Equal(t, first.ContainerDisk.Digest, again.ContainerDisk.Digest)
	require.Zero(t, again.Uploaded)

	t.Run("oras-pulls-the-disks", func(t *testing.T) {
		out := t.TempDir()
		ref := reg.Addr + "/images/debian-minimal:1.0.0-1"
		fetched := testutil.Run(t, "oras", "manifest", "fetch", "--plain-http", ref)
		require.Contains(t, fetched, `"artifactType":"application/vnd.kiln.image.v1"`)
		require.Contains(t, fetched, `"org.opencontainers.image.created":"`+m.Created.UTC().Format(time.RFC3339)+`"`)
		testutil.Run(t, "oras", "pull", "--plain-http", "-o", out, ref)
		require.Len(t, m.Outputs, 2)
		for _, o := range m.Outputs {
			require.Equal(t, o.SHA256, testutil.FileSHA256(t, filepath.Join(out, o.File)), o.File)
		}
		require.Equal(t, testutil.FileSHA256(t, filepath.Join(dir, "manifest.json")), testutil.FileSHA256(t, filepath.Join(out, "manifest.json")))
	})

	t.Run("skopeo-reads-the-containerdisk", func(t *testing.T) {
		layout := filepath.Join(t.TempDir(), "layout")
		testutil.Run(t, "skopeo", "copy", "--src-tls-verify=false", "docker://"+reg.Addr+"/images/debian-minimal:1.0.0-1-containerdisk", "oci:"+layout+":cd")
		var qcow2 manifest.Output
		for _, o := range m.Outputs {
			if o.Format == "qcow2" {
				qcow2 = o
			}
		}
		require.Equal(t, qcow2.SHA256, testutil.ContainerDiskLayout(t, layout, "cd", m.Name))
	})

	t.Run("pull-into-an-empty-catalog", func(t *testing.T) {
		empty := t.TempDir()
		code, out, errOut := runKiln(t, "images", "pull", "--images", empty, repo+":1.0.0")
		require.Equal(t, 0, code, "stdout:\n%s\nstderr:\n%s", out, errOut)
		require.Contains(t, out, "pulled debian-minimal/1.0.0/1 from "+repo+"@"+first.Digest)
		_, want, _ := runKiln(t, "images", "show", "--manifest", "--images", sharedRoot(), id)
		code, got, errOut := runKiln(t, "images", "show", "--manifest", "--images", empty, id)
		require.Equal(t, 0, code, errOut)
		require.Equal(t, want, got, "kiln images show prints the same manifest")
		require.Equal(t, listJSON(t, sharedRoot())[0].Created, listJSON(t, empty)[0].Created)
	})

	// A child on the pushed tag: one boot.
	recipe := filepath.Join(t.TempDir(), "oci-child.hcl")
	require.NoError(t, os.WriteFile(recipe, []byte(`image "oci-child" {
  version = "1.0.0"
  base "oci" { ref = "`+reg.Addr+`/images/debian-minimal:1.0.0" }
  boot { firmware = "uefi" }
  disk { size = "2GiB" }
  build "shell" "greeting" { inline = ["echo 'added by the child' > /etc/kiln-child"] }
  test "shell" "parent-change-kept" { inline = ["grep -q 'built by kiln' /etc/motd"] }
  test "shell" "child-change-added" { inline = ["grep -q 'added by the child' /etc/kiln-child"] }
  output {
    formats  = ["raw"]
    compress = "none"
  }
}
`), 0o644))
	childImages := t.TempDir()
	child, _ := buildExample(t, childImages, recipe)
	require.NotNil(t, child.Parent)
	require.Equal(t, manifest.Parent{Kind: "oci", Name: m.Name, Version: m.Version, Build: m.Build, SHA256: m.Outputs[0].SHA256,
		Path: child.Parent.Path, Format: "raw", Compression: "zstd", Extracted: child.Parent.Extracted,
		Ref: reg.Addr + "/images/debian-minimal:1.0.0", Digest: first.Digest}, *child.Parent)
	require.Equal(t, "oci "+reg.Addr+"/images/debian-minimal:1.0.0@"+first.Digest, child.Inputs.Base.Digest)
	requirePassed(t, child, []string{"parent-change-kept", "child-change-added"})
	code, out, errOut := runKiln(t, "build", "--if-changed", "--images", childImages, "--cache", sharedCache(t), recipe)
	require.Equal(t, 0, code, errOut)
	require.Contains(t, out, "up to date: oci-child/1.0.0/1")

	// Builds 2 and 3 of debian-minimal 1.0.0 from two other catalogs (the
	// shared build renumbered: another manifest.json, the same disks),
	// pushed by two kiln processes at once.
	bin := kilnBinary(t)
	var catalogs []string
	for _, n := range []int{2, 3} {
		images := t.TempDir()
		renumbered(t, dir, images, n)
		catalogs = append(catalogs, images)
	}
	var wg sync.WaitGroup
	outs := make([]string, 2)
	errs := make([]error, 2)
	for i, images := range catalogs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cmd := exec.Command(bin, "images", "push", "--json", "--images", images, fmt.Sprintf("debian-minimal@1.0.0/%d", i+2), repo)
			var o, e bytes.Buffer
			cmd.Stdout, cmd.Stderr = &o, &e
			errs[i] = cmd.Run()
			outs[i] = o.String() + e.String()
		}()
	}
	wg.Wait()
	digests := map[string]string{}
	for i := range outs {
		require.NoError(t, errs[i], outs[i])
		var r pushResult
		require.NoError(t, json.Unmarshal([]byte(outs[i][:strings.LastIndex(outs[i], "}")+1]), &r), outs[i])
		digests[fmt.Sprintf("1.0.0-%d", i+2)] = r.Digest
	}
	digests["1.0.0-1"], digests["1.0.0"] = first.Digest, digests["1.0.0-3"]
	for tag, d := range digests {
		got := strings.TrimSpace(testutil.Run(t, "oras", "resolve", "--plain-http", reg.Addr+"/images/debian-minimal:"+tag))
		require.Equal(t, d, got, tag)
	}
	// The tag moved: the child's base changed.
	lo := recipes.LoadOptions{Library: components.Builtin()}
	r, _, diags := recipes.Load(recipe, lo)
	require.False(t, diags.HasErrors())
	res, err := builder.CheckUpToDate(context.Background(), r, childImages, Version)
	require.NoError(t, err)
	require.False(t, res.UpToDate, "the tag 1.0.0 moved to build 3")
	require.Contains(t, res.Reason, "the inputs changed")

	// A push killed while a disk uploads leaves no tag.
	killedRepo := "oci://" + reg.Addr + "/images/killed"
	cmd := exec.Command(bin, "images", "push", "--images", sharedRoot(), id, killedRepo)
	var killedOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &killedOut, &killedOut
	before := reg.UploadBytes()
	require.NoError(t, cmd.Start())
	for deadline := time.Now().Add(2 * time.Minute); reg.UploadBytes() < before+64<<20; time.Sleep(20 * time.Millisecond) {
		require.True(t, time.Now().Before(deadline), "no upload seen:\n%s", killedOut.String())
	}
	require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
	_ = cmd.Wait()
	tags := repoTags(t, reg.Addr, "images/killed")
	require.Empty(t, tags, "a killed push left tags")
	code, out, errOut = runKiln(t, "images", "push", "--images", sharedRoot(), id, killedRepo)
	require.Equal(t, 0, code, "stdout:\n%s\nstderr:\n%s", out, errOut)
	require.Contains(t, out, "@"+first.Digest, "the same artifact")
	outDir := t.TempDir()
	testutil.Run(t, "oras", "pull", "--plain-http", "-o", outDir, reg.Addr+"/images/killed:1.0.0")
	for _, o := range m.Outputs {
		require.Equal(t, o.SHA256, testutil.FileSHA256(t, filepath.Join(outDir, o.File)), o.File)
	}
}

// renumbered publishes a copy of the build in dir into the catalog images
// as build n: the same files, manifest.json saying build n.
func renumbered(t *testing.T, dir, images string, n int) {
	t.Helper()
	s, err := catalog.NewStaging(images)
	require.NoError(t, err)
	defer s.Discard()
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	for _, e := range entries {
		if e.Type().IsRegular() && e.Name() != "manifest.json" && e.Name() != catalog.StateFile {
			testutil.Run(t, "cp", "--sparse=always", filepath.Join(dir, e.Name()), filepath.Join(s.Artifact, e.Name()))
		}
	}
	m := readManifest(t, dir)
	m.Build = n
	_, err = s.PublishAs(m.Name, m.Version, n, func(int) error { return m.Write(s.Artifact) })
	require.NoError(t, err)
}

// repoTags lists a repository's tags with oras.
func repoTags(t *testing.T, addr, repo string) []string {
	t.Helper()
	cmd := exec.Command("oras", "repo", "tags", "--plain-http", addr+"/"+repo)
	out, err := cmd.CombinedOutput()
	if err != nil && (strings.Contains(string(out), "not found") || strings.Contains(string(out), "name unknown")) {
		return nil // no such repository: nothing was ever tagged there
	}
	require.NoError(t, err, string(out))
	tags := strings.Fields(string(out))
	sort.Strings(tags)
	return tags
}
