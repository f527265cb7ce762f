package oci

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/kiln-build/kiln/attest"
	"github.com/kiln-build/kiln/catalog"
	"github.com/kiln-build/kiln/internal/sparse"
	"github.com/kiln-build/kiln/manifest"
	"github.com/kiln-build/kiln/sbom"
)

// The media types of a Kiln artifact.
const (
	// ArtifactType is the artifactType of a pushed build's manifest.
	ArtifactType = "application/vnd.kiln.image.v1"
	// MediaTypeManifest is the layer that holds the build's manifest.json.
	MediaTypeManifest = "application/vnd.kiln.manifest.v1+json"
	// MediaTypeQCOW2 is a qcow2 disk, as other tools publish it.
	MediaTypeQCOW2 = "application/x-qemu-qcow2"
)

// The annotations of a pushed build's manifest (besides the standard
// org.opencontainers.image.created, title and version).
const (
	AnnotationName    = "vnd.kiln.image.name"
	AnnotationVersion = "vnd.kiln.image.version"
	AnnotationBuild   = "vnd.kiln.image.build"
)

// DiskMediaType is the layer media type of a disk output:
// application/x-qemu-qcow2 for qcow2, else application/vnd.kiln.disk.FORMAT,
// with +COMPRESSION for a compressed one (application/vnd.kiln.disk.raw+zstd).
func DiskMediaType(o manifest.Output) string {
	t := "application/vnd.kiln.disk." + o.Format
	if o.Format == "qcow2" {
		t = MediaTypeQCOW2
	}
	if o.Compression != "" {
		t += "+" + o.Compression
	}
	return t
}

// fileMediaType is the layer media type of a build's other files.
func fileMediaType(name string) string {
	switch filepath.Ext(name) {
	case ".xml":
		return "application/xml"
	case ".log", ".txt":
		return "text/plain"
	case ".json":
		return "application/json"
	}
	return "application/octet-stream"
}

// referrerKinds are the files of a build attached to its artifact as
// referrers rather than layers: its SBOMs and provenance (see
// docs/supply-chain.md), each with the artifactType it is attached under
// and its layer's media type. On pull, a referrer of one of these types
// is written back under this name only.
var referrerKinds = []struct{ file, artifactType, mediaType string }{
	{sbom.SPDXFile, "application/spdx+json", "application/spdx+json"},
	{sbom.CycloneDXFile, "application/vnd.cyclonedx+json", "application/vnd.cyclonedx+json"},
	{attest.ProvenanceFile, attest.PayloadType, "application/vnd.dsse.envelope.v1+json"},
	{attest.BundleFile, attest.BundleMediaType, attest.BundleMediaType},
}

// blob is one file of a build as a registry blob.
type blob struct {
	path string // on disk
	desc ocispec.Descriptor
	// recorded says desc's digest is what manifest.json records, not what
	// was read: the upload checks the bytes as it sends them.
	recorded bool
}

// referrer is a file attached to the artifact.
type referrer struct {
	blob
	artifactType string
}

// build is a published build laid out as an artifact.
type build struct {
	dir       string
	m         *manifest.Manifest
	layers    []blob
	referrers []referrer
}

// layoutBuild reads the build in dir: its outputs (with the sha256 its
// manifest records), manifest.json, its other files, sorted, and the
// files that become referrers. The state file (catalog.json) is not part
// of the artifact: it changes after publishing, and the artifact of one
// build is the same whenever it is pushed.
func layoutBuild(dir string) (*build, error) {
	m, err := manifest.Read(dir)
	if err != nil {
		return nil, err
	}
	b := &build{dir: dir, m: m}
	taken := map[string]bool{manifest.FileName: true, catalog.StateFile: true}
	for _, o := range m.Outputs {
		bl, err := fileBlob(dir, o.File, DiskMediaType(o), o.SHA256)
		if err != nil {
			return nil, fmt.Errorf("output %s: %w", o.File, err)
		}
		b.layers = append(b.layers, bl)
		taken[o.File] = true
	}
	mj, err := fileBlob(dir, manifest.FileName, MediaTypeManifest, "")
	if err != nil {
		return nil, err
	}
	b.layers = append(b.layers, mj)
	for _, k := range referrerKinds {
		taken[k.file] = true
		if _, err := os.Lstat(filepath.Join(dir, k.file)); err != nil {
			continue
		}
		bl, err := fileBlob(dir, k.file, k.mediaType, "")
		if err != nil {
			return nil, err
		}
		b.referrers = append(b.referrers, referrer{bl, k.artifactType})
	}
	var others []string
	err = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		switch {
		case rel == ".":
			return nil
		case strings.HasPrefix(d.Name(), "."):
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil // temporaries
		case d.IsDir() || taken[filepath.ToSlash(rel)]:
			return nil
		case !d.Type().IsRegular():
			return fmt.Errorf("%s: not a regular file; a build holds only files", path)
		}
		others = append(others, filepath.ToSlash(rel))
		return nil
	})
	if err != nil {
		return nil, err
	}
	sort.Strings(others)
	for _, rel := range others {
		bl, err := fileBlob(dir, rel, fileMediaType(rel), "")
		if err != nil {
			return nil, err
		}
		b.layers = append(b.layers, bl)
	}
	return b, nil
}

// fileBlob describes dir/rel. With recorded (a hex sha256) the digest is
// taken from it and checked during the upload; otherwise the file is
// hashed now (reading only its data extents).
func fileBlob(dir, rel, mediaType, recorded string) (blob, error) {
	path := filepath.Join(dir, filepath.FromSlash(rel))
	fi, err := os.Stat(path)
	if err != nil {
		return blob{}, err
	}
	sum := recorded
	if sum == "" {
		if sum, err = sparse.SHA256(path); err != nil {
			return blob{}, err
		}
	}
	d := digest.NewDigestFromEncoded(digest.SHA256, strings.ToLower(sum))
	if err := d.Validate(); err != nil {
		return blob{}, fmt.Errorf("%s: sha256 %q: %w", rel, sum, err)
	}
	return blob{path: path, recorded: recorded != "", desc: ocispec.Descriptor{
		MediaType: mediaType, Digest: d, Size: fi.Size(),
		Annotations: map[string]string{ocispec.AnnotationTitle: rel},
	}}, nil
}

// created is the manifest's created annotation: the build's creation time,
// never the time of the push, so that a push is reproducible.
func created(m *manifest.Manifest) string { return m.Created.UTC().Format(time.RFC3339) }

// artifactManifest is the build's OCI image manifest, as JSON. The same
// build gives the same bytes whenever and wherever it is pushed.
func (b *build) artifactManifest() ([]byte, error) {
	layers := make([]ocispec.Descriptor, len(b.layers))
	for i, l := range b.layers {
		layers[i] = l.desc
	}
	return json.Marshal(ocispec.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageManifest,
		ArtifactType: ArtifactType, Config: ocispec.DescriptorEmptyJSON, Layers: layers,
		Annotations: map[string]string{
			ocispec.AnnotationCreated: created(b.m),
			ocispec.AnnotationTitle:   b.m.Name,
			ocispec.AnnotationVersion: b.m.Version,
			AnnotationName:            b.m.Name,
			AnnotationVersion:         b.m.Version,
			AnnotationBuild:           strconv.Itoa(b.m.Build),
		},
	})
}

// referrerManifest is the manifest that attaches r to subject.
func (b *build) referrerManifest(r referrer, subject ocispec.Descriptor) ([]byte, error) {
	s := subject
	s.Annotations, s.ArtifactType = nil, ""
	return json.Marshal(ocispec.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageManifest,
		ArtifactType: r.artifactType, Config: ocispec.DescriptorEmptyJSON, Layers: []ocispec.Descriptor{r.desc},
		Subject:     &s,
		Annotations: map[string]string{ocispec.AnnotationCreated: created(b.m)},
	})
}

// manifestDescriptor describes manifest JSON of the given media type.
func manifestDescriptor(data []byte, artifactType string) ocispec.Descriptor {
	return ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, ArtifactType: artifactType,
		Digest: digest.FromBytes(data), Size: int64(len(data))}
}
