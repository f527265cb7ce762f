package catalog

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/kiln-build/kiln/internal/sparse"
	"github.com/kiln-build/kiln/internal/testhook"
	"github.com/kiln-build/kiln/manifest"
)

// Receive publishes into the catalog under root a build made elsewhere,
// keeping its name, version and build number: a copy from another catalog
// (Distribute) or a pull from a registry (package oci).
//
// fill writes the build's files into the staging directory it is given and
// returns the sha256 of each (by path relative to it), as the source gave
// them; Receive reads every file back against those sums, checks each
// output against the sha256 its manifest.json records, writes st as the
// build's state and publishes it with PublishAs, under the version's lock,
// so the catalog never holds a half entry. from names the source in errors.
//
// When the catalog already has the build: if its manifest.json is the same
// (sameManifest), nothing is done and received is false; otherwise Receive
// fails, since one name/version/build would name two different images.
//
// A cancelled ctx stops it before the build is published (fill should
// watch ctx too); the catalog then holds nothing of it. window, when not
// "", is the testhook point reached just before publishing.
func Receive(ctx context.Context, root string, id Entry, from string, st State, window string, sameManifest func(dir string) (bool, error), fill func(dir string) (map[string]string, error)) (out Entry, received bool, err error) {
	out = Entry{Name: id.Name, Version: id.Version, Build: id.Build,
		Dir: filepath.Join(root, id.Name, id.Version.String(), fmt.Sprint(id.Build))}
	if done, err := alreadyThere(out, sameManifest); done || err != nil {
		return out, false, err
	}
	s, err := NewStaging(root)
	if err != nil {
		return out, false, err
	}
	defer s.Discard()
	sums, err := fill(s.Artifact)
	if err != nil {
		return out, false, fmt.Errorf("copying %s from %s to %s: %w", id.ID(), from, root, err)
	}
	info, err := manifest.Read(s.Artifact)
	if err != nil {
		return out, false, fmt.Errorf("%s from %s: %w", id.ID(), from, err)
	}
	if info.Name != id.Name || info.Version != id.Version.String() || info.Build != id.Build {
		return out, false, fmt.Errorf("%s from %s: its manifest.json names %s/%s/%d", id.ID(), from, info.Name, info.Version, info.Build)
	}
	if err := verifyCopy(s.Artifact, sums, info); err != nil {
		return out, false, fmt.Errorf("copying %s from %s to %s: %w", id.ID(), from, root, err)
	}
	if err := writeState(s.Artifact, st); err != nil {
		return out, false, err
	}
	if window != "" {
		testhook.At(window)
	}
	if err := ctx.Err(); err != nil {
		return out, false, fmt.Errorf("copying %s from %s to %s: %w", id.ID(), from, root, err)
	}
	if _, err := s.PublishAs(id.Name, id.Version.String(), id.Build, nil); err != nil {
		if errors.Is(err, ErrBuildExists) { // published meanwhile by another copy
			if done, err2 := alreadyThere(out, sameManifest); done || err2 != nil {
				return out, false, err2
			}
		}
		return out, false, err
	}
	return out, true, nil
}

// verifyCopy reads every copied file back and checks it against its
// source's sha256, and every output against its manifest's.
func verifyCopy(dir string, sums map[string]string, info *manifest.Manifest) error {
	for rel, want := range sums {
		got, err := sparse.SHA256(filepath.Join(dir, rel))
		if err != nil {
			return err
		}
		if got != want {
			return fmt.Errorf("%s: sha256 %s after copying, %s before", rel, got, want)
		}
	}
	for _, o := range info.Outputs {
		want, ok := sums[o.File]
		if !ok {
			return fmt.Errorf("%s: listed in manifest.json but missing from the build", o.File)
		}
		if o.SHA256 != "" && o.SHA256 != want {
			return fmt.Errorf("%s: sha256 %s, but manifest.json records %s; the source build is damaged", o.File, want, o.SHA256)
		}
	}
	return nil
}

// alreadyThere reports whether dest holds the build already (same says its
// manifest.json is the one being received), and fails when it holds a
// different one.
func alreadyThere(dest Entry, same func(dir string) (bool, error)) (bool, error) {
	if _, err := os.Lstat(dest.Dir); err != nil {
		return false, nil
	}
	if ok, err := same(dest.Dir); err == nil && ok {
		return true, nil
	}
	return false, fmt.Errorf("%s already holds a different %s; remove it there (kiln images rm) or publish a new build", dest.Dir, dest.ID())
}

// SameManifestAs says whether a build directory's manifest.json has the
// given sha256, for Receive.
func SameManifestAs(sum string) func(dir string) (bool, error) {
	return func(dir string) (bool, error) {
		got, err := sparse.SHA256(filepath.Join(dir, manifest.FileName))
		return err == nil && got == sum, err
	}
}
