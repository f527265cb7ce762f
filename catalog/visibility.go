package catalog

import (
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"time"
)

// EffectiveVisibility is s's visibility, "private" when unset.
func (s State) EffectiveVisibility() string {
	if s.Visibility == "" {
		return Private
	}
	return s.Visibility
}

// ShareChange is a change of who may use a build: principals to add to and
// remove from its list, or a switch to public or private (which also clears
// the list).
type ShareChange struct {
	Add, Remove     []string
	Public, Private bool
}

var principalRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._@:-]{0,127}$`)

// CheckPrincipal reports a principal name that cannot be shared with.
func CheckPrincipal(p string) error {
	if !principalRE.MatchString(p) {
		return fmt.Errorf("%q is not a principal: use letters, digits and . _ @ : - (such as alice, team-a or 123456789012)", p)
	}
	return nil
}

// Share applies c to e's state under the version's lock and records it in
// the history. A build whose spec is encrypted or carries product codes
// cannot be made public. Making a build public deprecates it
// PublicDeprecation after its creation, unless it is deprecated sooner.
func Share(e Entry, c ShareChange, now time.Time) (State, error) {
	if c.Public && c.Private {
		return State{}, errors.New("a build is public or private, not both: pass one of --public and --private")
	}
	for _, p := range append(append([]string{}, c.Add...), c.Remove...) {
		if err := CheckPrincipal(p); err != nil {
			return State{}, err
		}
	}
	info, err := ReadInfo(e.Dir)
	if err != nil {
		return State{}, err
	}
	if c.Public {
		if err := info.Catalog.CanBePublic(); err != nil {
			return State{}, fmt.Errorf("%s cannot be made public: %w", e.ID(), err)
		}
	}
	var out State
	err = UpdateState(e, func(s *State) error {
		before := describeAccess(*s)
		set := map[string]bool{}
		for _, p := range s.SharedWith {
			set[p] = true
		}
		for _, p := range c.Add {
			set[p] = true
		}
		for _, p := range c.Remove {
			delete(set, p)
		}
		if c.Private {
			set = map[string]bool{}
		}
		s.SharedWith = s.SharedWith[:0]
		for p := range set {
			s.SharedWith = append(s.SharedWith, p)
		}
		sort.Strings(s.SharedWith)
		if len(s.SharedWith) == 0 {
			s.SharedWith = nil
		}
		switch {
		case c.Public:
			s.Visibility = Public
			if latest := info.Created.Add(PublicDeprecation); s.DeprecatedAt == nil || s.DeprecatedAt.After(latest) {
				s.DeprecatedAt = &latest
			}
		case c.Private || s.Visibility != Public:
			s.Visibility = Private
			if len(s.SharedWith) > 0 {
				s.Visibility = Shared
			}
		}
		after := describeAccess(*s)
		if after != before {
			s.History = append(s.History, Change{At: now.UTC(), Action: "share", Detail: before + " -> " + after})
		}
		out = *s
		return nil
	})
	return out, err
}

func describeAccess(s State) string {
	v := s.EffectiveVisibility()
	if len(s.SharedWith) > 0 {
		v += " [" + strings.Join(s.SharedWith, ",") + "]"
	}
	return v
}

// Deprecate deprecates e from at (which may be in the future). A public
// build cannot be deprecated later than PublicDeprecation after its
// creation: make it private or shared first, as with public AMIs.
func Deprecate(e Entry, at, now time.Time) (State, error) {
	info, err := ReadInfo(e.Dir)
	if err != nil {
		return State{}, err
	}
	at = at.UTC().Truncate(time.Second)
	var out State
	err = UpdateState(e, func(s *State) error {
		if latest := info.Created.Add(PublicDeprecation); s.EffectiveVisibility() == Public && at.After(latest) {
			return fmt.Errorf("%s is public, so it is deprecated on %s at the latest; to deprecate it later, make it private or share it with named principals first", e.ID(), latest.Format(time.DateOnly))
		}
		s.DeprecatedAt = &at
		s.History = append(s.History, Change{At: now.UTC(), Action: "deprecate", Detail: "from " + at.Format(time.RFC3339)})
		out = *s
		return nil
	})
	return out, err
}

// Undeprecate cancels e's deprecation. A public build keeps its deprecation:
// make it private or shared first.
func Undeprecate(e Entry, now time.Time) (State, error) {
	var out State
	err := UpdateState(e, func(s *State) error {
		if s.EffectiveVisibility() == Public {
			return fmt.Errorf("%s is public, and a public build is always deprecated two years after its creation at the latest; make it private or share it with named principals first", e.ID())
		}
		if s.DeprecatedAt != nil {
			s.DeprecatedAt = nil
			s.History = append(s.History, Change{At: now.UTC(), Action: "undeprecate"})
		}
		out = *s
		return nil
	})
	return out, err
}
