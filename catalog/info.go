package catalog

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/kiln-build/kiln/internal/units"
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

// Spec is what a recipe says about a build's place in the catalog. It is
// recorded in manifest.json under "catalog" and never changes after
// publishing; State holds what does.
type Spec struct {
	// Encrypted and ProductCodes mark builds that can never be public.
	Encrypted    bool     `json:"encrypted,omitempty"`
	ProductCodes []string `json:"product_codes,omitempty"`
	// Visibility and SharedWith are the state the build is published with.
	Visibility string     `json:"visibility,omitempty"`
	SharedWith []string   `json:"shared_with,omitempty"`
	Lifecycle  *Lifecycle `json:"lifecycle,omitempty"`
}

// CanBePublic says why a build cannot be made public, or returns nil.
func (s Spec) CanBePublic() error {
	switch {
	case s.Encrypted && len(s.ProductCodes) > 0:
		return errors.New("it is encrypted and carries product codes; such an image can only be private or shared with named principals")
	case s.Encrypted:
		return errors.New("it is encrypted; an encrypted image can only be private or shared with named principals")
	case len(s.ProductCodes) > 0:
		return fmt.Errorf("it carries product code(s) %v; such an image can only be private or shared with named principals", s.ProductCodes)
	}
	return nil
}

// Lifecycle is a retention rule for the builds of one image (see Plan). It
// is shared by recipes and pipelines. Zero fields are unset.
type Lifecycle struct {
	// KeepLast protects the newest KeepLast builds from every rule; without
	// DeleteAfter, the builds after them are deleted.
	KeepLast int `json:"keep_last,omitempty"`
	// DeprecateAfter deprecates builds older than this.
	DeprecateAfter Age `json:"deprecate_after,omitempty"`
	// DeleteAfter deletes builds older than this.
	DeleteAfter Age `json:"delete_after,omitempty"`
}

// Age is a duration written as "90d" in JSON.
type Age time.Duration

func (a Age) MarshalText() ([]byte, error) { return []byte(units.FormatAge(time.Duration(a))), nil }

func (a *Age) UnmarshalText(b []byte) error {
	d, err := units.ParseAge(string(b))
	*a = Age(d)
	return err
}

func (a Age) String() string { return units.FormatAge(time.Duration(a)) }

// Info is what the catalog reads from a build's manifest.json.
type Info struct {
	Name    string    `json:"name"`
	Version string    `json:"version"`
	Build   int       `json:"build"`
	Created time.Time `json:"created"`
	Outputs []struct {
		File   string `json:"file"`
		Format string `json:"format"`
		SHA256 string `json:"sha256"`
	} `json:"outputs"`
	Catalog Spec `json:"catalog"`
}

// ReadInfo reads a build directory's manifest.json. A build without one (or
// without a creation time) is dated by its directory's modification time.
func ReadInfo(dir string) (Info, error) {
	var in Info
	data, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return in, err
	}
	if err == nil {
		if err := json.Unmarshal(data, &in); err != nil {
			return in, fmt.Errorf("%s: %w", filepath.Join(dir, "manifest.json"), err)
		}
	}
	if in.Created.IsZero() {
		if fi, err := os.Stat(dir); err == nil {
			in.Created = fi.ModTime().UTC()
		}
	}
	return in, nil
}

// InitialState is the state a build is published with: the visibility its
// recipe asks for (a public build is deprecated PublicDeprecation after
// created) and a first history entry.
func InitialState(spec Spec, created time.Time) State {
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
func WriteInitialState(dir string, spec Spec, created time.Time) error {
	return writeState(dir, InitialState(spec, created))
}
