package oci

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"regexp"

	"strconv"
	"strings"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2/errdef"
	"oras.land/oras-go/v2/registry/remote"
	"oras.land/oras-go/v2/registry/remote/errcode"

	"github.com/kiln-build/kiln/internal/testhook"
	"github.com/kiln-build/kiln/internal/units"
)

// Pushed is what Push did.
type Pushed struct {
	Repo   Ref    // the repository
	Digest string // the artifact's manifest digest
	Tag    string // VERSION-BUILD
	// Tags are the tags that point at the artifact or the newest build of
	// its version after the push: VERSION-BUILD and, when this build is the
	// newest of its version, VERSION.
	Tags []string
	// Uploaded counts the blobs sent; the others were in the registry.
	Uploaded, Blobs int
	// Referrers are the files attached to the artifact as referrers.
	Referrers []string
	// ContainerDisk is the KubeVirt containerDisk image pushed with it.
	ContainerDisk *Ref
}

// ClashError is Push's error when the registry already holds another
// artifact under the build's name, version and build number: two builders
// published different builds with the same number. Push changes no tag
// then; both digests are named.
type ClashError struct {
	Repo         Ref
	Tag          string // VERSION-BUILD
	Ours, Theirs string // manifest digests
}

func (e *ClashError) Error() string {
	return fmt.Sprintf("%s: %s is already another build: the registry holds %s, this build is %s; no tag was changed. "+
		"Two catalogs published different builds under one number: pull the registry's (kiln images pull %s) into a catalog without this one, "+
		"or build again here and push the new build number", e.Repo.URL(), e.Tag, e.Theirs, e.Ours, e.Repo.Repo().URL()+"@"+e.Theirs)
}

// BuildTag is the immutable tag of a build: VERSION-BUILD, such as 1.2.0-3.
func BuildTag(version string, build int) string { return version + "-" + strconv.Itoa(build) }

// ContainerDiskTag is the tag of a build's containerDisk image.
func ContainerDiskTag(version string, build int) string {
	return BuildTag(version, build) + "-containerdisk"
}

// claimTag is the tag each push of a build writes first (VERSION-BUILD.
// and 16 hex digits of its digest), so that two pushes of different
// builds under one number see each other (see claim).
func claimTag(tag string, d string) string {
	return tag + "." + strings.TrimPrefix(d, "sha256:")[:16]
}

// Push pushes the published build in dir to the repository to (its tag or
// digest, if any, is ignored): every blob that is not there yet, streamed
// from its file; the artifact's manifest; its SBOMs and provenance as
// referrers; then the tags, VERSION-BUILD and the moving VERSION. With
// containerDisk it then pushes the KubeVirt containerDisk image of the
// build's qcow2 (ContainerDiskTag).
//
// No tag ever points at a partial artifact: a manifest is pushed only
// after its blobs, and tagged only after its referrers. A push of the same
// build again sends nothing but tags and gets the same manifest digest.
// When the repository holds another build under the same VERSION-BUILD,
// Push fails with a ClashError and changes no tag.
func Push(ctx context.Context, dir string, to Ref, o Options, containerDisk bool) (*Pushed, error) {
	res, err := push(ctx, dir, to, o, containerDisk)
	return res, explain(err)
}

func push(ctx context.Context, dir string, to Ref, o Options, containerDisk bool) (*Pushed, error) {
	b, err := layoutBuild(dir)
	if err != nil {
		return nil, err
	}
	if containerDisk {
		if _, err := containerDiskOutput(b.m); err != nil {
			return nil, err // before anything is pushed
		}
	}
	to = to.Repo()
	repo, err := repository(to, o)
	if err != nil {
		return nil, err
	}
	res := &Pushed{Repo: to, Tag: BuildTag(b.m.Version, b.m.Build)}
	where := fmt.Sprintf("pushing %s/%s/%d to %s", b.m.Name, b.m.Version, b.m.Build, to.URL())
	for _, l := range append(b.layers, blob{desc: ocispec.DescriptorEmptyJSON}) {
		sent, err := pushBlob(ctx, repo, l, o)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", where, err)
		}
		res.Blobs++
		if sent {
			res.Uploaded++
		}
	}
	testhook.At(testhook.PushBlobs)
	data, err := b.artifactManifest()
	if err != nil {
		return nil, err
	}
	desc := manifestDescriptor(data, ArtifactType)
	res.Digest = desc.Digest.String()
	if err := pushManifest(ctx, repo, desc, data, ""); err != nil {
		return nil, fmt.Errorf("%s: the manifest: %w", where, err)
	}
	testhook.At(testhook.PushManifest)
	if err := attachAll(ctx, repo, b, desc, o); err != nil {
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	for _, r := range b.referrers {
		res.Referrers = append(res.Referrers, r.desc.Annotations[ocispec.AnnotationTitle])
	}
	if err := claim(ctx, repo, to, res.Tag, desc, data); err != nil {
		return nil, err
	}
	testhook.At(testhook.PushClaimed)
	if err := pushManifest(ctx, repo, desc, data, res.Tag); err != nil {
		return nil, fmt.Errorf("%s: tagging %s: %w", where, res.Tag, err)
	}
	// Read the tag back: a builder that ignores claims may have written it.
	if got, err := resolveListed(ctx, repo, res.Tag); err != nil {
		return nil, fmt.Errorf("%s: reading the tag %s back: %w", where, res.Tag, err)
	} else if got.Digest != desc.Digest {
		return nil, &ClashError{Repo: to, Tag: res.Tag, Ours: res.Digest, Theirs: got.Digest.String()}
	}
	o.logf("tagged %s -> %s", to.Repo().String()+":"+res.Tag, res.Digest)
	res.Tags = append(res.Tags, res.Tag)
	newest, err := moveVersionTag(ctx, repo, b.m.Version, o)
	if err != nil {
		return nil, fmt.Errorf("%s: the tag %s: %w", where, b.m.Version, err)
	}
	if newest == res.Tag {
		res.Tags = append(res.Tags, b.m.Version)
	}
	if containerDisk {
		cd, err := pushContainerDisk(ctx, repo, b, o)
		if err != nil {
			return nil, fmt.Errorf("%s: the containerDisk image: %w", where, err)
		}
		res.ContainerDisk = &cd
		res.ContainerDisk.Registry, res.ContainerDisk.Repository = to.Registry, to.Repository
	}
	return res, nil
}

// pushBlob uploads a blob unless the registry has it, streaming it from
// its file. It reports whether it sent it.
func pushBlob(ctx context.Context, repo *remote.Repository, b blob, o Options) (bool, error) {
	if ok, err := repo.Exists(ctx, b.desc); err != nil {
		return false, err
	} else if ok {
		return false, nil
	}
	var r io.Reader
	if b.path == "" { // the empty config
		r = bytes.NewReader([]byte("{}"))
	} else {
		f, err := os.Open(b.path)
		if err != nil {
			return false, err
		}
		defer f.Close()
		r = f
		if b.recorded {
			r = &checkedReader{r: f, h: sha256.New(), want: b.desc.Digest.Encoded(), name: b.desc.Annotations[ocispec.AnnotationTitle]}
		}
		o.logf("upload %s (%s, %s)", b.desc.Annotations[ocispec.AnnotationTitle], units.FormatSize(uint64(b.desc.Size)), b.desc.Digest)
	}
	if err := repo.Push(ctx, b.desc, r); err != nil && !errors.Is(err, errdef.ErrAlreadyExists) {
		return false, fmt.Errorf("%s: %w", b.desc.Annotations[ocispec.AnnotationTitle], err)
	}
	return true, nil
}

// checkedReader fails the read that reaches the end of a file whose bytes
// do not hash to what its manifest records, so that a damaged output is
// never sent under its recorded digest.
type checkedReader struct {
	r    io.Reader
	h    hash.Hash
	want string
	name string
}

func (c *checkedReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.h.Write(p[:n])
	if errors.Is(err, io.EOF) {
		if got := hex.EncodeToString(c.h.Sum(nil)); got != c.want {
			return n, fmt.Errorf("%s: sha256 %s, but manifest.json records %s; the build is damaged", c.name, got, c.want)
		}
	}
	return n, err
}

// pushManifest pushes a manifest by digest (tag "") or under a tag. A
// registry may not see a blob that another push of the same blob is
// committing at that moment (docker-registry answers MANIFEST_BLOB_UNKNOWN
// then); the push is tried again after a moment.
func pushManifest(ctx context.Context, repo *remote.Repository, desc ocispec.Descriptor, data []byte, tag string) error {
	if tag == "" {
		if ok, err := repo.Exists(ctx, desc); err != nil {
			return err
		} else if ok {
			return nil
		}
	}
	for attempt := 1; ; attempt++ {
		var err error
		if tag == "" {
			err = repo.Push(ctx, desc, bytes.NewReader(data))
		} else {
			err = repo.PushReference(ctx, desc, bytes.NewReader(data), tag)
		}
		var er *errcode.ErrorResponse
		if err == nil || attempt == 5 || !errors.As(err, &er) || !hasCode(er, errcode.ErrorCodeManifestBlobUnknown) {
			return err
		}
		if err := pause(ctx, attempt); err != nil {
			return err
		}
	}
}

func hasCode(er *errcode.ErrorResponse, code string) bool {
	for _, e := range er.Errors {
		if e.Code == code {
			return true
		}
	}
	return false
}

// attachAll attaches the build's referrers to subject, then lists them
// back and attaches again what is missing: with the referrers tag schema,
// concurrent pushes of one build rewrite one index, and a write may drop
// another's. The registry is asked first whether it has the referrers
// API (listing the referrers does).
func attachAll(ctx context.Context, repo *remote.Repository, b *build, subject ocispec.Descriptor, o Options) error {
	if len(b.referrers) == 0 {
		return nil
	}
	for attempt := 0; ; attempt++ {
		listed := map[string]bool{}
		err := repo.Referrers(ctx, subject, "", func(page []ocispec.Descriptor) error {
			for _, d := range page {
				listed[d.Digest.String()] = true
			}
			return nil
		})
		if err != nil && !errors.Is(err, errdef.ErrNotFound) {
			return fmt.Errorf("listing the referrers: %w", err)
		}
		missing := 0
		for _, r := range b.referrers {
			data, err := b.referrerManifest(r, subject)
			if err != nil {
				return err
			}
			if listed[manifestDescriptor(data, r.artifactType).Digest.String()] {
				continue
			}
			missing++
			if attempt == 5 {
				return fmt.Errorf("%s is not listed as a referrer after attaching it %d times", r.desc.Annotations[ocispec.AnnotationTitle], attempt)
			}
			if err := attach(ctx, repo, b, r, subject, o); err != nil {
				return fmt.Errorf("attaching %s: %w", r.desc.Annotations[ocispec.AnnotationTitle], err)
			}
		}
		if missing == 0 {
			return nil
		}
		if err := pause(ctx, attempt); err != nil {
			return err
		}
	}
}

// pause waits a little longer at each attempt, for a registry to settle.
func pause(ctx context.Context, attempt int) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(time.Duration(attempt+1) * 100 * time.Millisecond):
		return nil
	}
}

// resolveListed resolves a tag that was listed. docker-registry lists a
// tag another push is writing before it can resolve it, so "not found" is
// tried again for a moment.
func resolveListed(ctx context.Context, repo *remote.Repository, tag string) (ocispec.Descriptor, error) {
	for attempt := 0; ; attempt++ {
		d, err := repo.Resolve(ctx, tag)
		if err == nil || attempt == 5 || !errors.Is(err, errdef.ErrNotFound) {
			return d, err
		}
		if err := pause(ctx, attempt); err != nil {
			return d, err
		}
	}
}

// attach pushes a referrer of subject. On a registry without the
// referrers API, oras-go keeps the sha256-<digest> tag's index up to date
// (the referrers tag schema).
func attach(ctx context.Context, repo *remote.Repository, b *build, r referrer, subject ocispec.Descriptor, o Options) error {
	if _, err := pushBlob(ctx, repo, r.blob, o); err != nil {
		return err
	}
	if _, err := pushBlob(ctx, repo, blob{desc: ocispec.DescriptorEmptyJSON}, o); err != nil {
		return err
	}
	data, err := b.referrerManifest(r, subject)
	if err != nil {
		return err
	}
	desc := manifestDescriptor(data, r.artifactType)
	return pushManifest(ctx, repo, desc, data, "")
}

// claim stakes this push's claim to tag (VERSION-BUILD) before the tag is
// written, and fails with a ClashError when another artifact holds or
// claims it; the claim tag stays, so that every build pushed is reachable
// and a clash can be seen in the tag list. Each push first writes its claim tag, then lists the claims:
// of two pushes of different builds under one number, the later to list
// sees the other's claim, so they never both succeed, whatever the
// timing. The registry offers no compare-and-swap on tags; this is what
// stands in for it.
func claim(ctx context.Context, repo *remote.Repository, to Ref, tag string, desc ocispec.Descriptor, data []byte) error {
	clash := func(theirs string) error {
		return &ClashError{Repo: to, Tag: tag, Ours: desc.Digest.String(), Theirs: theirs}
	}
	mine := claimTag(tag, desc.Digest.String())
	if err := pushManifest(ctx, repo, desc, data, mine); err != nil {
		return fmt.Errorf("claiming %s: %w", tag, err)
	}
	// The tag itself, set by an earlier push or another tool.
	if cur, err := repo.Resolve(ctx, tag); err == nil && cur.Digest != desc.Digest {
		return clash(cur.Digest.String())
	} else if err != nil && !errors.Is(err, errdef.ErrNotFound) {
		return err
	}
	tags, err := listTags(ctx, repo)
	if err != nil {
		return err
	}
	claimRE := regexp.MustCompile(`^` + regexp.QuoteMeta(tag) + `\.[0-9a-f]{16}$`)
	for _, t := range tags {
		if t == mine || !claimRE.MatchString(t) {
			continue
		}
		other, err := resolveListed(ctx, repo, t)
		if err != nil {
			return fmt.Errorf("reading the claim %s: %w", t, err)
		}
		if other.Digest != desc.Digest {
			return clash(other.Digest.String())
		}
	}
	return nil
}

// listTags lists every tag of the repository.
func listTags(ctx context.Context, repo *remote.Repository) ([]string, error) {
	var out []string
	err := repo.Tags(ctx, "", func(tags []string) error {
		out = append(out, tags...)
		return nil
	})
	if errors.Is(err, errdef.ErrNotFound) {
		return nil, nil
	}
	return out, err
}

// newestBuild is the VERSION-BUILD tag of the highest build of version in
// tags, "" when there is none.
func newestBuild(tags []string, version string) (string, int) {
	re := regexp.MustCompile(`^` + regexp.QuoteMeta(version) + `-([1-9][0-9]{0,8})$`)
	best, n := "", 0
	for _, t := range tags {
		if m := re.FindStringSubmatch(t); m != nil {
			if b, _ := strconv.Atoi(m[1]); b > n {
				best, n = t, b
			}
		}
	}
	return best, n
}

// moveVersionTag points the moving tag VERSION at the highest build of
// that version, and returns that build's tag. Concurrent pushes may each
// write it; each checks after writing and writes again until it holds the
// highest build it can see, so the last word is the highest build.
func moveVersionTag(ctx context.Context, repo *remote.Repository, version string, o Options) (string, error) {
	for attempt := 0; ; attempt++ {
		tags, err := listTags(ctx, repo)
		if err != nil {
			return "", err
		}
		newest, _ := newestBuild(tags, version)
		if newest == "" {
			return "", fmt.Errorf("no %s-BUILD tag is listed", version)
		}
		want, err := resolveListed(ctx, repo, newest)
		if err != nil {
			return "", err
		}
		cur, err := repo.Resolve(ctx, version)
		if err == nil && cur.Digest == want.Digest {
			return newest, nil
		}
		if err != nil && !errors.Is(err, errdef.ErrNotFound) {
			return "", err
		}
		if attempt == 5 {
			return "", fmt.Errorf("it keeps changing (concurrent pushes); it is %s, the newest build is %s", cur.Digest, newest)
		}
		if err := repo.Tag(ctx, want, version); err != nil {
			return "", err
		}
		o.logf("tagged %s -> %s (%s)", version, want.Digest, newest)
	}
}
