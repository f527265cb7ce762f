package catalog

import (
	"errors"
	"os"
	"time"

	"github.com/kiln-build/kiln/internal/units"
	"github.com/kiln-build/kiln/manifest"
)

// Visibilities of a build: who may use it (the seeds' launch permissions).
const (
	Private = "private" // only the catalog's owner (the default)
	Shared  = "shared"  // the principals in State.SharedWith
	Public  = "public"  // anyone
)

// PublicDeprecation is how long after its creation a public build is
// deprecated at the latest, as public AMIs are after two years.
const PublicDeprecation = 2 * 365 * units.Day

// ReadInfo reads a build directory's manifest.json. A build without one (or
// without a creation time) is dated by its directory's modification time.
func ReadInfo(dir string) (*manifest.Manifest, error) {
	m, err := manifest.Read(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		m = &manifest.Manifest{}
	case err != nil:
		return nil, err
	}
	if m.Created.IsZero() {
		if fi, err := os.Stat(dir); err == nil {
			m.Created = fi.ModTime().UTC()
		}
	}
	return m, nil
}

// InitialState is the state a build is published with: the visibility its
// recipe asks for (a public build is deprecated PublicDeprecation after
// created) and a first history entry.
func InitialState(spec manifest.Catalog, created time.Time) State {
	s := State{Visibility: spec.Visibility, SharedWith: spec.SharedWith}
	if s.Visibility == "" {
		s.Visibility = Private
	}
	if s.Visibility == Public {
		at := created.Add(PublicDeprecation).UTC()
		s.DeprecatedAt = &at
	}
	s.History = []Change{{At: created.UTC(), Action: "publish", Detail: describeAccess(s)}}
	return s
}

// WriteInitialState writes InitialState into a staged artifact directory.
func WriteInitialState(dir string, spec manifest.Catalog, created time.Time) error {
	return writeState(dir, InitialState(spec, created))
}
