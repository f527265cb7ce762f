package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kiln-build/kiln/internal/sparse"
	"github.com/kiln-build/kiln/manifest"
	"github.com/kiln-build/kiln/platform"
)

// Bases chain: debian-minimal (the build the e2e tests share) is copied
// into a catalog, examples/image-base.hcl builds a child on it from the
// catalog, and examples/file-base.hcl imports a VMDK
// that qemu-img made of the child. Each boots and passes its tests in the
// guest; each manifest names its parent; the grandchild still holds both
// ancestors' changes. A wrong sha256 or a missing parent fails before
// anything is built.
func TestE2EChainedAndImportedBases(t *testing.T) {
	requireE2E(t)
	images := t.TempDir()
	parent, _ := copyShared(t, images)

	child, childDir := buildExample(t, images, "../../examples/image-base.hcl")
	require.NotNil(t, child.Parent)
	p := child.Parent
	require.Equal(t, "image", p.Kind)
	require.Equal(t, "debian-minimal", p.Name)
	require.Equal(t, "1.0.0", p.Version)
	require.Equal(t, parent.Build, p.Build)
	require.Equal(t, parent.Outputs[0].SHA256, p.SHA256, "the parent's published raw image")
	require.Equal(t, "zstd", p.Compression)
	require.Equal(t, p.SHA256, child.BaseDigest())
	require.Equal(t, "image", child.Base.Type)
	requirePassed(t, child, []string{"parent-change-kept", "child-change-added", "mounted-as-declared"})
	require.NotEmpty(t, child.Kernel)
	// The child is stamped with its parent's source date.
	require.Equal(t, manifest.SourceDateParent, child.SourceDate.From)
	require.Equal(t, parent.SourceDate.Epoch, child.SourceDate.Epoch)

	// Another tool's disk: qemu-img converts the child to a VMDK.
	vmdk := filepath.Join(t.TempDir(), "legacy.vmdk")
	out, err := exec.Command("qemu-img", "convert", "-O", "vmdk", filepath.Join(childDir, child.Outputs[0].File), vmdk).CombinedOutput()
	require.NoError(t, err, string(out))
	sum, err := sparse.SHA256(vmdk)
	require.NoError(t, err)
	imported, importedDir := buildExample(t, images, "../../examples/file-base.hcl", "disk="+vmdk, "sha256="+sum)
	require.NotNil(t, imported.Parent)
	require.Equal(t, manifest.Parent{Kind: "file", SHA256: sum, Path: vmdk, Format: "vmdk", Extracted: imported.Parent.Extracted}, *imported.Parent)
	require.Equal(t, "/", imported.Parent.Extracted[0].Mount)
	requirePassed(t, imported, []string{"customised", "booted-under-bios"})
	// A disk file's source date is its newest file's time: the child's
	// source date, to which the child's own files were clamped.
	require.Equal(t, manifest.SourceDateTree, imported.SourceDate.From)
	require.Equal(t, child.SourceDate.Epoch, imported.SourceDate.Epoch)
	require.Equal(t, platform.BootBIOS, imported.Health[0].Firmware)
	// The imported image was re-laid out for BIOS and still has what its
	// ancestors added.
	img := filepath.Join(importedDir, imported.Outputs[0].File)
	checkDisk(t, img, imported)
	var rootStart uint64
	for _, part := range imported.Disk.Partitions {
		if part.Mount == "/" {
			rootStart = part.Start
		}
	}
	for file, want := range map[string]string{"/etc/motd": "built by kiln", "/etc/kiln-child": "added by the child", "/etc/kiln-imported": "imported by kiln"} {
		out, err := exec.Command("debugfs", "-R", "cat "+file, img+"?offset="+strconv.FormatUint(rootStart, 10)).Output()
		require.NoError(t, err)
		require.Contains(t, string(out), want, file)
	}

	// A wrong sha256 and a parent that is not in the catalog fail the build
	// in its base stage, with what to do.
	code, _, errOut := runKiln(t, "build", "--images", images, "--cache", sharedCache(t), "-var", "disk="+vmdk, "-var", "sha256="+strings.Repeat("0", 64), "../../examples/file-base.hcl")
	require.Equal(t, 1, code, errOut)
	require.Contains(t, errOut, "sha256 mismatch: the file has "+sum)
	code, _, errOut = runKiln(t, "build", "--images", t.TempDir(), "--cache", sharedCache(t), "../../examples/image-base.hcl")
	require.Equal(t, 1, code, errOut)
	require.Contains(t, errOut, "no build of debian-minimal")
	require.NoError(t, os.RemoveAll(filepath.Join(images, ".failed")))
}

// requirePassed checks that the build ran exactly the named tests, all
// passing, and every boot was healthy.
func requirePassed(t *testing.T, m *manifest.Manifest, names []string) {
	t.Helper()
	var got []string
	for _, tr := range m.Tests {
		require.Equal(t, manifest.Pass, tr.Status, "%s: %s", tr.Name, tr.Output)
		got = append(got, tr.Name)
	}
	require.Equal(t, names, got)
	for _, h := range m.Health {
		require.True(t, h.MultiUser)
		require.Empty(t, h.Problems)
	}
}
