package oci

import (
	"context"
	"errors"
	"fmt"
	"time"

	"oras.land/oras-go/v2/errdef"

	"github.com/kiln-build/kiln/catalog"
	"github.com/kiln-build/kiln/internal/semver"
	"github.com/kiln-build/kiln/manifest"
)

// Prune applies the lifecycle rules recorded in the manifests of the
// builds in a repository (catalog.PlanBuilds: the same rules kiln images
// prune applies to a catalog) and returns the actions. A build to delete
// loses its manifest, and with it its VERSION-BUILD and claim tags, its
// containerDisk image and its referrers index; the registry's garbage
// collection frees the blobs. The moving VERSION tag always points at a
// version's newest build, which no rule deletes. A registry keeps no
// deprecation state, so deprecations are returned with Do "deprecate" but
// change nothing (their Reason says so). With dryRun nothing is deleted.
func Prune(ctx context.Context, repoRef Ref, o Options, now time.Time, dryRun bool) ([]catalog.Action, error) {
	repo, err := repository(repoRef.Repo(), o)
	if err != nil {
		return nil, err
	}
	tags, err := listTags(ctx, repo)
	if err != nil {
		return nil, explain(err)
	}
	var builds []catalog.Built
	digests := map[string]string{} // build ID -> manifest digest
	for _, tag := range tags {
		version, build, ok := parseBuildTag(tag)
		if !ok {
			continue
		}
		desc, man, err := fetchManifest(ctx, repo, tag)
		if err != nil {
			return nil, fmt.Errorf("%s:%s: %w", repoRef.Repo(), tag, err)
		}
		if man.ArtifactType != ArtifactType {
			continue
		}
		var m *manifest.Manifest
		for _, l := range man.Layers {
			if l.MediaType == MediaTypeManifest && l.Size <= maxBuildManifest {
				data, err := fetchBytes(ctx, repo, l)
				if err != nil {
					return nil, fmt.Errorf("%s:%s: manifest.json: %w", repoRef.Repo(), tag, err)
				}
				if m, err = manifest.Decode(data); err != nil {
					return nil, fmt.Errorf("%s:%s: manifest.json: %w", repoRef.Repo(), tag, err)
				}
			}
		}
		if m == nil || m.Version != version.String() || m.Build != build {
			continue // not a Kiln build under its own tag
		}
		e := catalog.Entry{Name: m.Name, Version: version, Build: build, Dir: repoRef.Repo().String() + ":" + tag}
		builds = append(builds, catalog.Built{Entry: e, Manifest: m})
		digests[e.ID()] = desc.Digest.String()
	}
	plan := catalog.PlanBuilds(builds, now)
	if dryRun {
		return plan, nil
	}
	var done []catalog.Action
	for _, a := range plan {
		if a.Do == "deprecate" {
			a.Reason += "; not applied: a registry keeps no deprecation"
		}
		if a.Do == "delete" {
			if err := deleteBuild(ctx, repoRef, a.Entry, digests[a.Entry.ID()], o); err != nil {
				return done, fmt.Errorf("deleting %s: %w", a.Entry.ID(), err)
			}
		}
		done = append(done, a)
	}
	return done, nil
}

// parseBuildTag parses VERSION-BUILD.
func parseBuildTag(tag string) (semver.Version, int, bool) {
	for i := len(tag) - 1; i > 0; i-- {
		if tag[i] == '-' {
			v, err := semver.Parse(tag[:i])
			if err != nil {
				return semver.Version{}, 0, false
			}
			if _, n := newestBuild([]string{tag}, tag[:i]); n > 0 {
				return v, n, true
			}
			return semver.Version{}, 0, false
		}
	}
	return semver.Version{}, 0, false
}

// deleteBuild deletes a build's artifact manifest (its tags go with it),
// then its containerDisk image and its referrers tag schema index.
func deleteBuild(ctx context.Context, repoRef Ref, e catalog.Entry, digest string, o Options) error {
	repo, err := repository(repoRef.Repo(), o)
	if err != nil {
		return err
	}
	desc, err := repo.Resolve(ctx, digest)
	if err != nil {
		return err
	}
	if err := repo.Delete(ctx, desc); err != nil {
		return explain(err)
	}
	for _, tag := range []string{ContainerDiskTag(e.Version.String(), e.Build), "sha256-" + desc.Digest.Encoded()} {
		d, err := repo.Resolve(ctx, tag)
		if errors.Is(err, errdef.ErrNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		if err := repo.Delete(ctx, d); err != nil && !errors.Is(err, errdef.ErrNotFound) {
			return err
		}
	}
	o.logf("deleted %s (%s)", e.ID(), digest)
	return nil
}
