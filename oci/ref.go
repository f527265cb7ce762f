// Package oci moves Kiln builds to and from OCI registries: a build is
// pushed as an OCI 1.1 artifact (artifactType application/vnd.kiln.image.v1,
// the empty config, one layer per file of the build), with its SBOMs and
// provenance attached as referrers and, on request, a KubeVirt containerDisk
// image of its qcow2; a pull verifies every digest and publishes the build
// into a local catalog exactly as it was (catalog.Receive).
//
// It speaks the registry protocol through oras-go (oras.land/oras-go/v2),
// reads credentials from the files Docker and Podman write, and uses plain
// HTTP only for loopback registries or when told to. It does not decide
// which builds to push (the CLI and the builder do).
package oci

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"oras.land/oras-go/v2/registry"
	"oras.land/oras-go/v2/registry/remote"
	"oras.land/oras-go/v2/registry/remote/auth"
	"oras.land/oras-go/v2/registry/remote/credentials"
	"oras.land/oras-go/v2/registry/remote/errcode"
	"oras.land/oras-go/v2/registry/remote/retry"
)

// Scheme prefixes a registry location where a directory could stand
// instead (kiln images push, distribute targets).
const Scheme = "oci://"

// Ref names a repository in a registry, with a tag or a digest or neither:
// REGISTRY/REPOSITORY[:TAG|@DIGEST].
type Ref struct {
	Registry   string // host[:port]
	Repository string
	Tag        string
	Digest     string // sha256:...
}

// ParseRef parses REGISTRY/REPOSITORY[:TAG|@DIGEST], with or without the
// oci:// scheme.
func ParseRef(s string) (Ref, error) {
	in := strings.TrimPrefix(s, Scheme)
	if !strings.Contains(in, "/") || strings.HasSuffix(in, ":") || strings.HasSuffix(in, "@") {
		return Ref{}, fmt.Errorf("%q is not a registry reference: write REGISTRY/REPOSITORY[:TAG], such as 127.0.0.1:5000/images/web:1.0.0-3", s)
	}
	r, err := registry.ParseReference(in)
	if err != nil {
		return Ref{}, fmt.Errorf("%q is not a registry reference (%v): write REGISTRY/REPOSITORY[:TAG], such as 127.0.0.1:5000/images/web:1.0.0-3", s, err)
	}
	out := Ref{Registry: r.Registry, Repository: r.Repository}
	if r.Reference != "" {
		if _, err := r.Digest(); err == nil {
			out.Digest = r.Reference
		} else {
			out.Tag = r.Reference
		}
	}
	// "repo:tag@digest" keeps the digest; the tag is dropped by the parser.
	return out, nil
}

// Repo is r without its tag or digest.
func (r Ref) Repo() Ref { return Ref{Registry: r.Registry, Repository: r.Repository} }

// String is REGISTRY/REPOSITORY[:TAG][@DIGEST], without the scheme.
func (r Ref) String() string {
	s := r.Registry + "/" + r.Repository
	if r.Tag != "" {
		s += ":" + r.Tag
	}
	if r.Digest != "" {
		s += "@" + r.Digest
	}
	return s
}

// URL is the oci:// form of r.
func (r Ref) URL() string { return Scheme + r.String() }

// reference is the tag or digest the registry is asked for.
func (r Ref) reference() string {
	if r.Digest != "" {
		return r.Digest
	}
	return r.Tag
}

// IsLoopback reports whether a registry host (host or host:port) is this
// machine's: localhost or a loopback address. Such registries are spoken
// to in plain HTTP; any other only with Options.PlainHTTP.
func IsLoopback(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.Trim(host, "[]")
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Options are how Kiln talks to a registry.
type Options struct {
	// PlainHTTP allows plain HTTP to a registry that is not on loopback
	// (--plain-http); loopback registries always get it.
	PlainHTTP bool
	// UserAgent is sent with every request ("kiln/VERSION").
	UserAgent string
	// Log receives one line per blob and tag written or read; nil is quiet.
	Log io.Writer
}

func (o Options) logf(format string, args ...any) {
	if o.Log != nil {
		fmt.Fprintf(o.Log, format+"\n", args...)
	}
}

// repository is a client of r's repository with the user's credentials.
func repository(r Ref, o Options) (*remote.Repository, error) {
	repo, err := remote.NewRepository(r.Registry + "/" + r.Repository)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", r.URL(), err)
	}
	repo.PlainHTTP = o.PlainHTTP || IsLoopback(r.Registry)
	store, err := CredentialStore()
	if err != nil {
		return nil, err
	}
	header := http.Header{}
	if o.UserAgent != "" {
		header.Set("User-Agent", o.UserAgent)
	}
	repo.Client = &auth.Client{Client: retry.DefaultClient, Header: header, Cache: auth.NewCache(), Credential: credentials.Credential(store)}
	repo.TagListMaxPages = 1000
	// Concurrent pushes of one build update the referrers tag schema's
	// index together; an old index is left for the registry's garbage
	// collection rather than deleted under another push.
	repo.SkipReferrersGC = true
	return repo, nil
}

// CredentialStore reads registry credentials from the files users already
// have, first match wins: $REGISTRY_AUTH_FILE (Podman, Buildah and Skopeo's
// auth.json), else Podman's default $XDG_RUNTIME_DIR/containers/auth.json
// when it exists; then Docker's config.json ($DOCKER_CONFIG/config.json or
// ~/.docker/config.json), with its credential helpers. A missing file
// holds no credentials.
func CredentialStore() (credentials.Store, error) {
	var stores []credentials.Store
	podman := os.Getenv("REGISTRY_AUTH_FILE")
	if podman == "" {
		if xdg := os.Getenv("XDG_RUNTIME_DIR"); xdg != "" {
			if p := filepath.Join(xdg, "containers", "auth.json"); fileExists(p) {
				podman = p
			}
		}
	}
	if podman != "" {
		s, err := credentials.NewStore(podman, credentials.StoreOptions{})
		if err != nil {
			return nil, fmt.Errorf("registry credentials in %s: %w", podman, err)
		}
		stores = append(stores, s)
	}
	docker, err := credentials.NewStoreFromDocker(credentials.StoreOptions{})
	if err != nil {
		return nil, fmt.Errorf("registry credentials in Docker's config.json: %w", err)
	}
	stores = append(stores, docker)
	return credentials.NewStoreWithFallbacks(stores[0], stores[1:]...), nil
}

// explain adds what to do to an error that says the registry wants
// credentials Kiln does not have or that it refused.
func explain(err error) error {
	var er *errcode.ErrorResponse
	if errors.Is(err, auth.ErrBasicCredentialNotFound) || (errors.As(err, &er) && (er.StatusCode == http.StatusUnauthorized || er.StatusCode == http.StatusForbidden)) {
		return fmt.Errorf("%w\nthe registry wants credentials: log in with docker login or podman login (Kiln reads $REGISTRY_AUTH_FILE, then ~/.docker/config.json)", err)
	}
	return err
}

func fileExists(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular()
}
