package oci

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2/content"
	"oras.land/oras-go/v2/errdef"
	"oras.land/oras-go/v2/registry/remote"

	"github.com/kiln-build/kiln/catalog"
	"github.com/kiln-build/kiln/internal/semver"
	"github.com/kiln-build/kiln/internal/sparse"
	"github.com/kiln-build/kiln/manifest"
)

// Limits on what a registry may send that is read into memory.
const (
	maxManifestBytes = 4 << 20  // an OCI manifest
	maxBuildManifest = 32 << 20 // a build's manifest.json
)

// ErrNotFound wraps the error of a tag or digest the repository does not have.
var ErrNotFound = errdef.ErrNotFound

// Resolve returns the manifest digest ref's tag (or digest) names now.
func Resolve(ctx context.Context, ref Ref, o Options) (string, error) {
	if ref.reference() == "" {
		return "", fmt.Errorf("%s names no tag or digest: write %s:TAG", ref.URL(), ref.URL())
	}
	repo, err := repository(ref, o)
	if err != nil {
		return "", err
	}
	desc, err := repo.Resolve(ctx, ref.reference())
	if err != nil {
		return "", explain(fmt.Errorf("resolving %s: %w", ref.URL(), err))
	}
	return desc.Digest.String(), nil
}

// Pulled is what Pull did.
type Pulled struct {
	Entry     catalog.Entry // the build in the catalog
	Digest    string        // the artifact's manifest digest
	Received  bool          // false when the catalog had the build already
	Referrers []string      // the files restored from referrers
}

// Pull fetches the Kiln build that ref (a tag or a digest) names and
// publishes it into the catalog under root, exactly as it was pushed: the
// same name, version, build number and files, manifest.json byte for byte,
// with the SBOM and provenance referrers restored beside it. Every blob is
// streamed to its file and checked against its digest, and every output
// against the sha256 manifest.json records, before the build is published
// (catalog.Receive); a failed or killed pull publishes nothing. The
// build's catalog state starts from its recipe's visibility, with the
// pull in its history.
func Pull(ctx context.Context, ref Ref, root string, o Options, now time.Time) (*Pulled, error) {
	res, err := pull(ctx, ref, root, o, now)
	return res, explain(err)
}

func pull(ctx context.Context, ref Ref, root string, o Options, now time.Time) (*Pulled, error) {
	if ref.reference() == "" {
		return nil, fmt.Errorf("%s names no tag or digest: write %s:TAG, such as %s:1.0.0 or :1.0.0-3", ref.URL(), ref.URL(), ref.URL())
	}
	repo, err := repository(ref, o)
	if err != nil {
		return nil, err
	}
	desc, man, err := fetchManifest(ctx, repo, ref.reference())
	if err != nil {
		return nil, fmt.Errorf("pulling %s: %w", ref.URL(), err)
	}
	if ref.Digest != "" && desc.Digest.String() != ref.Digest {
		return nil, fmt.Errorf("pulling %s: the registry sent %s", ref.URL(), desc.Digest)
	}
	if man.ArtifactType != ArtifactType {
		hint := ""
		if man.Annotations[AnnotationName] != "" {
			hint = fmt.Sprintf(" It is the containerDisk image of %s/%s/%s; pull the tag %s instead.", man.Annotations[AnnotationName], man.Annotations[AnnotationVersion], man.Annotations[AnnotationBuild],
				BuildTag(man.Annotations[AnnotationVersion], atoi(man.Annotations[AnnotationBuild])))
		}
		return nil, fmt.Errorf("%s is not a Kiln build: its artifactType is %q, not %q.%s", ref.URL(), man.ArtifactType, ArtifactType, hint)
	}
	var mlayer *ocispec.Descriptor
	for i := range man.Layers {
		if man.Layers[i].MediaType == MediaTypeManifest {
			mlayer = &man.Layers[i]
		}
	}
	if mlayer == nil || mlayer.Size > maxBuildManifest {
		return nil, fmt.Errorf("%s has no manifest.json layer (%s) Kiln can read", ref.URL(), MediaTypeManifest)
	}
	mdata, err := fetchBytes(ctx, repo, *mlayer)
	if err != nil {
		return nil, fmt.Errorf("pulling %s: manifest.json: %w", ref.URL(), err)
	}
	m, err := manifest.Decode(mdata)
	if err != nil {
		return nil, fmt.Errorf("pulling %s: manifest.json: %w", ref.URL(), err)
	}
	_, errRef := catalog.ParseRef(fmt.Sprintf("%s@%s/%d", m.Name, m.Version, m.Build))
	version, errVer := semver.Parse(m.Version)
	if errRef != nil || errVer != nil || m.Build < 1 {
		return nil, fmt.Errorf("pulling %s: its manifest.json names no build Kiln can catalog (%s/%s/%d)", ref.URL(), m.Name, m.Version, m.Build)
	}
	if a := man.Annotations; a[AnnotationName] != m.Name || a[AnnotationVersion] != m.Version || a[AnnotationBuild] != strconv.Itoa(m.Build) {
		return nil, fmt.Errorf("pulling %s: the artifact is annotated %s/%s/%s but its manifest.json is %s/%s/%d", ref.URL(),
			a[AnnotationName], a[AnnotationVersion], a[AnnotationBuild], m.Name, m.Version, m.Build)
	}
	id := catalog.Entry{Name: m.Name, Version: version, Build: m.Build}
	st := catalog.InitialState(m.Catalog, m.Created)
	from := ref.Repo().URL() + "@" + desc.Digest.String()
	st.History = append(st.History, catalog.Change{At: now.UTC(), Action: "pull", Detail: "from " + from})
	res := &Pulled{Digest: desc.Digest.String()}
	res.Entry, res.Received, err = catalog.Receive(ctx, root, id, from, st, "", catalog.SameManifestAs(mlayer.Digest.Encoded()), func(dir string) (map[string]string, error) {
		sums := map[string]string{}
		for _, l := range man.Layers {
			if err := fetchFile(ctx, repo, l, l.Annotations[ocispec.AnnotationTitle], dir, sums, o); err != nil {
				return nil, err
			}
		}
		names, err := pullReferrers(ctx, repo, desc, dir, sums, o)
		res.Referrers = names
		return sums, err
	})
	if err != nil {
		return nil, err
	}
	return res, nil
}

func atoi(s string) int { n, _ := strconv.Atoi(s); return n }

// fetchManifest fetches and decodes the image manifest reference names,
// checking its digest.
func fetchManifest(ctx context.Context, repo *remote.Repository, reference string) (ocispec.Descriptor, *ocispec.Manifest, error) {
	desc, rc, err := repo.FetchReference(ctx, reference)
	if err != nil {
		return desc, nil, err
	}
	defer rc.Close()
	if desc.Size > maxManifestBytes {
		return desc, nil, fmt.Errorf("the manifest is %d bytes; Kiln reads at most %d", desc.Size, maxManifestBytes)
	}
	if desc.MediaType != ocispec.MediaTypeImageManifest {
		return desc, nil, fmt.Errorf("it is a %s, not an OCI image manifest", desc.MediaType)
	}
	data, err := content.ReadAll(rc, desc)
	if err != nil {
		return desc, nil, err
	}
	var man ocispec.Manifest
	if err := json.Unmarshal(data, &man); err != nil {
		return desc, nil, fmt.Errorf("the manifest: %w", err)
	}
	return desc, &man, nil
}

// fetchBytes fetches a small blob, checking its digest.
func fetchBytes(ctx context.Context, repo *remote.Repository, d ocispec.Descriptor) ([]byte, error) {
	rc, err := repo.Fetch(ctx, d)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return content.ReadAll(rc, d)
}

// fetchFile streams the blob d into dir/rel (holes where it is zeros),
// checking its size and digest, and records its sha256 in sums. rel comes
// from the registry: it must stay inside dir, name no hidden file and
// not be the catalog's state file.
func fetchFile(ctx context.Context, repo *remote.Repository, d ocispec.Descriptor, rel, dir string, sums map[string]string, o Options) error {
	if rel == "" || !filepath.IsLocal(rel) || rel == catalog.StateFile || strings.Contains(rel, "\\") {
		return fmt.Errorf("a layer is named %q: not a file name Kiln writes into a build", rel)
	}
	for _, part := range strings.Split(rel, "/") {
		if strings.HasPrefix(part, ".") {
			return fmt.Errorf("a layer is named %q: not a file name Kiln writes into a build", rel)
		}
	}
	if _, dup := sums[rel]; dup {
		return fmt.Errorf("two layers are named %q", rel)
	}
	if d.Digest.Algorithm() != "sha256" || d.Digest.Validate() != nil {
		return fmt.Errorf("%s: digest %q is not a sha256", rel, d.Digest)
	}
	path := filepath.Join(dir, filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	o.logf("download %s (%s)", rel, d.Digest)
	rc, err := repo.Fetch(ctx, d)
	if err != nil {
		return fmt.Errorf("%s: %w", rel, err)
	}
	defer rc.Close()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	vr := content.NewVerifyReader(rc, d)
	w := sparse.NewWriter(f)
	if _, err := io.CopyBuffer(w, vr, make([]byte, 1<<20)); err != nil {
		return fmt.Errorf("%s: %w", rel, err)
	}
	if err := vr.Verify(); err != nil {
		return fmt.Errorf("%s: %w", rel, err)
	}
	if err := w.Finish(); err != nil {
		return err
	}
	sums[rel] = d.Digest.Encoded()
	return nil
}

// pullReferrers restores the SBOM and provenance files attached to
// subject, each under the one name its artifactType has.
func pullReferrers(ctx context.Context, repo *remote.Repository, subject ocispec.Descriptor, dir string, sums map[string]string, o Options) ([]string, error) {
	var refs []ocispec.Descriptor
	err := repo.Referrers(ctx, subject, "", func(page []ocispec.Descriptor) error {
		refs = append(refs, page...)
		return nil
	})
	if err != nil && !errors.Is(err, errdef.ErrNotFound) {
		return nil, fmt.Errorf("listing the referrers: %w", err)
	}
	if len(refs) > 64 {
		return nil, fmt.Errorf("%d referrers are attached; Kiln reads at most 64", len(refs))
	}
	// Each referrer's own manifest says what it is: registries differ in
	// the artifactType they list (some give the config's media type).
	byType := map[string]*ocispec.Manifest{}
	for _, r := range refs {
		_, man, err := fetchManifest(ctx, repo, r.Digest.String())
		if err != nil {
			return nil, fmt.Errorf("referrer %s: %w", r.Digest, err)
		}
		if man.Subject == nil || man.Subject.Digest != subject.Digest {
			return nil, fmt.Errorf("referrer %s does not refer to %s", r.Digest, subject.Digest)
		}
		if byType[man.ArtifactType] != nil {
			return nil, fmt.Errorf("two referrers of type %s are attached", man.ArtifactType)
		}
		byType[man.ArtifactType] = man
	}
	var names []string
	for _, k := range referrerKinds {
		man := byType[k.artifactType]
		if man == nil {
			continue
		}
		if len(man.Layers) != 1 || man.Layers[0].MediaType != k.mediaType {
			return nil, fmt.Errorf("the %s referrer is not one %s file", k.artifactType, k.mediaType)
		}
		if err := fetchFile(ctx, repo, man.Layers[0], k.file, dir, sums, o); err != nil {
			return nil, err
		}
		names = append(names, k.file)
	}
	return names, nil
}
