package manifest

import (
	"errors"
	"fmt"
	"time"

	"github.com/kiln-build/kiln/internal/units"
)

// Catalog is what a recipe says about a build's place in the catalog. It is
// recorded under "catalog" and never changes after publishing; the
// catalog's catalog.json holds what does (package catalog).
type Catalog struct {
	// Encrypted and ProductCodes mark builds that can never be public.
	Encrypted    bool     `json:"encrypted,omitempty"`
	ProductCodes []string `json:"product_codes,omitempty"`
	// Visibility and SharedWith are the state the build is published with.
	Visibility string     `json:"visibility,omitempty"`
	SharedWith []string   `json:"shared_with,omitempty"`
	Lifecycle  *Lifecycle `json:"lifecycle,omitempty"`
}

// CanBePublic says why a build cannot be made public, or returns nil.
func (s Catalog) CanBePublic() error {
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

// Lifecycle is a retention rule for the builds of one image (see
// catalog.Plan). It is shared by recipes and pipelines. Zero fields are unset.
type Lifecycle struct {
	// KeepLast protects the newest KeepLast builds from every rule; without
	// DeleteAfter, the builds after them are deleted.
	KeepLast int `json:"keep_last,omitempty"`
	// DeprecateAfter deprecates builds older than this.
	DeprecateAfter Age `json:"deprecate_after,omitempty"`
	// DeleteAfter deletes builds older than this.
	DeleteAfter Age `json:"delete_after,omitempty"`
}

// Validate reports a rule that does nothing or contradicts itself.
func (l Lifecycle) Validate() error {
	switch {
	case l.KeepLast < 0:
		return fmt.Errorf("keep_last is %d: it counts builds, 1 or more", l.KeepLast)
	case l.KeepLast == 0 && l.DeprecateAfter <= 0 && l.DeleteAfter <= 0:
		return fmt.Errorf("the rule does nothing: set keep_last, deprecate_after or delete_after")
	case l.DeprecateAfter > 0 && l.DeleteAfter > 0 && l.DeleteAfter <= l.DeprecateAfter:
		return fmt.Errorf("delete_after (%s) must be longer than deprecate_after (%s): a build is deprecated before it is deleted", l.DeleteAfter, l.DeprecateAfter)
	}
	return nil
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
