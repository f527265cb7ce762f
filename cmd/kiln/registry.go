package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/kiln-build/kiln/catalog"
	"github.com/kiln-build/kiln/oci"
)

const pushUsage = `kiln images push REF oci://REGISTRY/REPOSITORY [--containerdisk] [--plain-http] [--json] [--images DIR]

Pushes a build to an OCI registry as an artifact (artifactType
application/vnd.kiln.image.v1: one layer per disk output, manifest.json and
the build's other files as layers, its SBOMs and provenance as referrers),
tagged VERSION-BUILD (1.2.0-3) and VERSION (1.2.0, the newest build of the
version). Disks are streamed from their files; blobs the registry has are
not sent again; the same build always gives the same manifest digest. No
tag is written before everything it points at is in the registry.

When the registry already holds a different build under VERSION-BUILD
(another catalog published the same number), the push fails naming both
digests and changes no tag (exit 1). See docs/registries.md.

Credentials: $REGISTRY_AUTH_FILE (Podman's auth.json), then
~/.docker/config.json (docker login). Plain HTTP is used for loopback
registries only, unless --plain-http is given.`

const pullUsage = `kiln images pull oci://REGISTRY/REPOSITORY:TAG [--missing-ok] [--plain-http] [--json] [--images DIR]

Pulls the Kiln build a tag (VERSION or VERSION-BUILD) or a digest
(@sha256:...) names into the catalog, exactly as it was pushed: the same
name, version, build number and files, manifest.json byte for byte, with
its SBOMs and provenance. Every blob is checked against its digest, and
every disk against manifest.json, before the build is published; a build
the catalog has already is left as it is. --missing-ok makes a tag the
registry does not have a success that pulls nothing.`

// registryFlags are the flags push and pull share.
type registryFlags struct {
	plainHTTP *bool
	json      *bool
}

func (rf *registryFlags) register(fs interface {
	Bool(string, bool, string) *bool
}) {
	rf.plainHTTP = fs.Bool("plain-http", false, "speak plain HTTP to a registry that is not on loopback")
	rf.json = fs.Bool("json", false, "print the result as JSON")
}

func (rf *registryFlags) options(stderr io.Writer) oci.Options {
	o := oci.Options{PlainHTTP: *rf.plainHTTP, UserAgent: "kiln/" + Version}
	if !*rf.json {
		o.Log = stderr
	}
	return o
}

// parseOCI parses an oci:// argument.
func parseOCI(arg string) (oci.Ref, error) {
	if !strings.HasPrefix(arg, oci.Scheme) {
		return oci.Ref{}, fmt.Errorf("%q is not a registry: write oci://REGISTRY/REPOSITORY, such as oci://127.0.0.1:5000/images/web", arg)
	}
	return oci.ParseRef(arg)
}

func imagesPush(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs, root := imagesFlags("push", pushUsage, stderr)
	var rf registryFlags
	rf.register(fs)
	cd := fs.Bool("containerdisk", false, "also push a KubeVirt containerDisk image of the build's qcow2, tagged VERSION-BUILD-containerdisk")
	incDep := fs.Bool("include-deprecated", false, "let wildcards pick deprecated builds")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return flagError(err)
	}
	if len(pos) != 2 {
		return usageErr(stderr, fs, errors.New("expected a build (NAME@VERSION/BUILD) and a registry (oci://REGISTRY/REPOSITORY)"))
	}
	cref, err := catalog.ParseRef(pos[0])
	if err != nil {
		return usageErr(stderr, fs, err)
	}
	to, err := parseOCI(pos[1])
	if err != nil {
		return usageErr(stderr, fs, err)
	}
	if to.Tag != "" || to.Digest != "" {
		return usageErr(stderr, fs, fmt.Errorf("%s: push to a repository, without a tag: the tags are VERSION-BUILD and VERSION", pos[1]))
	}
	e, err := catalog.Select(*root, cref, *incDep, time.Now())
	if err != nil {
		return imagesErr(stderr, err)
	}
	res, err := oci.Push(ctx, e.Dir, to, rf.options(stderr), *cd)
	if err != nil {
		return imagesErr(stderr, err)
	}
	if *rf.json {
		out := map[string]any{"status": "pushed", "id": e.ID(), "repository": res.Repo.URL(), "digest": res.Digest, "tags": res.Tags,
			"uploaded": res.Uploaded, "blobs": res.Blobs, "referrers": res.Referrers}
		if res.ContainerDisk != nil {
			out["containerdisk"] = map[string]string{"tag": res.ContainerDisk.Tag, "digest": res.ContainerDisk.Digest}
		}
		return writeJSON(stdout, out)
	}
	fmt.Fprintf(stdout, "pushed %s to %s@%s\n  tags:  %s\n  blobs: %d sent, %d already there\n", e.ID(), res.Repo.URL(), res.Digest,
		strings.Join(res.Tags, ", "), res.Uploaded, res.Blobs-res.Uploaded)
	if len(res.Referrers) > 0 {
		fmt.Fprintf(stdout, "  referrers: %s\n", strings.Join(res.Referrers, ", "))
	}
	if cd := res.ContainerDisk; cd != nil {
		fmt.Fprintf(stdout, "  containerDisk: %s:%s@%s\n", res.Repo.URL(), cd.Tag, cd.Digest)
	}
	return exitOK
}

func imagesPull(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs, root := imagesFlags("pull", pullUsage, stderr)
	var rf registryFlags
	rf.register(fs)
	missingOK := fs.Bool("missing-ok", false, "a tag the registry does not have pulls nothing and is not an error")
	arg, code := oneArg(fs, args, stderr, "")
	if code >= 0 {
		return code
	}
	from, err := parseOCI(arg)
	if err != nil {
		return usageErr(stderr, fs, err)
	}
	res, err := oci.Pull(ctx, from, *root, rf.options(stderr), time.Now())
	if errors.Is(err, oci.ErrNotFound) && *missingOK {
		if *rf.json {
			return writeJSON(stdout, map[string]any{"status": "missing", "reference": from.URL()})
		}
		fmt.Fprintf(stdout, "nothing to pull: %s is not in the registry\n", from.URL())
		return exitOK
	}
	if err != nil {
		return imagesErr(stderr, err)
	}
	status := "pulled"
	if !res.Received {
		status = "present"
	}
	if *rf.json {
		return writeJSON(stdout, map[string]any{"status": status, "id": res.Entry.ID(), "path": res.Entry.Dir, "digest": res.Digest, "referrers": res.Referrers})
	}
	if res.Received {
		fmt.Fprintf(stdout, "pulled %s from %s@%s (every digest verified)\n  path: %s\n", res.Entry.ID(), from.Repo().URL(), res.Digest, res.Entry.Dir)
	} else {
		fmt.Fprintf(stdout, "%s is already in the catalog: %s\n", res.Entry.ID(), res.Entry.Dir)
	}
	return exitOK
}
