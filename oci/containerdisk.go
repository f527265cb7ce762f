package oci

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"

	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2/registry/remote"

	"github.com/kiln-build/kiln/manifest"
)

// ContainerDiskUID owns the disk in a containerDisk image: KubeVirt's qemu
// user (UID and GID 107) must be able to read it.
const ContainerDiskUID = 107

// ContainerDiskPath is where a containerDisk image holds the disk of the
// image NAME: KubeVirt looks in /disk.
func ContainerDiskPath(name string) string { return "disk/" + name + ".qcow2" }

// containerDiskOutput is the build's qcow2, the disk a containerDisk holds.
func containerDiskOutput(m *manifest.Manifest) (manifest.Output, error) {
	for _, o := range m.Outputs {
		if o.Format == "qcow2" && o.Compression == "" {
			return o, nil
		}
	}
	return manifest.Output{}, fmt.Errorf("%s/%s/%d has no qcow2 output, which a containerDisk holds: add \"qcow2\" to the recipe's output formats", m.Name, m.Version, m.Build)
}

// writeContainerDiskLayer writes the containerDisk's one layer, an
// uncompressed tar: disk/ and disk/NAME.qcow2, owned by 107:107, readable
// by all, dated at the build's creation. The same file gives the same
// bytes, so the layer's digest can be computed in one pass and the tar
// streamed again in a second, never held in memory or written to disk.
func writeContainerDiskLayer(w io.Writer, m *manifest.Manifest, qcow2 string) error {
	f, err := os.Open(qcow2)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	tw := tar.NewWriter(w)
	mtime := m.Created.UTC()
	hdrs := []*tar.Header{
		{Typeflag: tar.TypeDir, Name: "disk/", Mode: 0o755, Uid: ContainerDiskUID, Gid: ContainerDiskUID, ModTime: mtime},
		{Typeflag: tar.TypeReg, Name: ContainerDiskPath(m.Name), Mode: 0o444, Uid: ContainerDiskUID, Gid: ContainerDiskUID, ModTime: mtime, Size: fi.Size()},
	}
	for _, h := range hdrs {
		h.Format = tar.FormatPAX
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
	}
	if n, err := io.Copy(tw, f); err != nil {
		return err
	} else if n != fi.Size() {
		return fmt.Errorf("%s changed while it was read", qcow2)
	}
	return tw.Close()
}

// countingWriter counts what goes through it.
type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// pushContainerDisk pushes the build's KubeVirt containerDisk: a container
// image with no base (FROM scratch) whose one layer holds the qcow2 at
// /disk/NAME.qcow2, tagged ContainerDiskTag. It returns its reference.
func pushContainerDisk(ctx context.Context, repo *remote.Repository, b *build, o Options) (Ref, error) {
	out, err := containerDiskOutput(b.m)
	if err != nil {
		return Ref{}, err
	}
	qcow2 := filepath.Join(b.dir, out.File)
	// First pass: the layer's digest and size.
	h := sha256.New()
	cw := &countingWriter{w: h}
	if err := writeContainerDiskLayer(cw, b.m, qcow2); err != nil {
		return Ref{}, err
	}
	layer := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayer, Digest: digest.NewDigestFromBytes(digest.SHA256, h.Sum(nil)), Size: cw.n}
	if ok, err := repo.Exists(ctx, layer); err != nil {
		return Ref{}, err
	} else if !ok {
		// Second pass: the same bytes, streamed to the registry.
		pr, pw := io.Pipe()
		go func() { pw.CloseWithError(writeContainerDiskLayer(pw, b.m, qcow2)) }()
		o.logf("upload containerDisk layer %s (%s)", ContainerDiskPath(b.m.Name), layer.Digest)
		err := repo.Push(ctx, layer, pr)
		pr.CloseWithError(err)
		if err != nil {
			return Ref{}, fmt.Errorf("the layer: %w", err)
		}
	}
	createdAt := b.m.Created.UTC()
	config, err := json.Marshal(ocispec.Image{
		Created:  &createdAt,
		Platform: ocispec.Platform{Architecture: "amd64", OS: "linux"},
		RootFS:   ocispec.RootFS{Type: "layers", DiffIDs: []digest.Digest{layer.Digest}}, // an uncompressed layer is its own diff
		History:  []ocispec.History{{Created: &createdAt, CreatedBy: "kiln images push --containerdisk", Comment: fmt.Sprintf("%s/%s/%d", b.m.Name, b.m.Version, b.m.Build)}},
	})
	if err != nil {
		return Ref{}, err
	}
	cfg := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: digest.FromBytes(config), Size: int64(len(config))}
	if err := pushManifest(ctx, repo, cfg, config, ""); err != nil { // a blob, pushed by digest
		return Ref{}, fmt.Errorf("the config: %w", err)
	}
	data, err := json.Marshal(ocispec.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageManifest,
		Config: cfg, Layers: []ocispec.Descriptor{layer},
		Annotations: map[string]string{
			ocispec.AnnotationCreated: created(b.m), ocispec.AnnotationTitle: b.m.Name, ocispec.AnnotationVersion: b.m.Version,
			AnnotationName: b.m.Name, AnnotationVersion: b.m.Version, AnnotationBuild: strconv.Itoa(b.m.Build),
		},
	})
	if err != nil {
		return Ref{}, err
	}
	desc := manifestDescriptor(data, "")
	tag := ContainerDiskTag(b.m.Version, b.m.Build)
	if err := pushManifest(ctx, repo, desc, data, ""); err != nil {
		return Ref{}, err
	}
	if err := pushManifest(ctx, repo, desc, data, tag); err != nil {
		return Ref{}, err
	}
	if got, err := repo.Resolve(ctx, tag); err != nil {
		return Ref{}, err
	} else if got.Digest != desc.Digest {
		return Ref{}, fmt.Errorf("the tag %s points at %s after it was written with %s: another push wrote it", tag, got.Digest, desc.Digest)
	}
	o.logf("tagged %s -> %s (containerDisk)", tag, desc.Digest)
	return Ref{Tag: tag, Digest: desc.Digest.String()}, nil
}
