package catalog

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/kiln-build/kiln/internal/testhook"
	"github.com/kiln-build/kiln/manifest"
)

// Action is one step of a prune: deprecate or delete one build.
type Action struct {
	Entry   Entry
	Created time.Time
	Do      string // "deprecate" or "delete"
	Reason  string
}

func (a Action) String() string {
	return fmt.Sprintf("%s %s (created %s; %s)", a.Do, a.Entry.ID(), a.Created.Format(time.DateOnly), a.Reason)
}

// Plan works out what the lifecycle rules of the catalog under root ask for
// at now, without changing anything. The rules are read from the catalog
// alone: each build's manifest.json carries its recipe's lifecycle, and the
// rule of an image (all its versions) is the one of its newest build that
// has one. Its builds are ordered newest first by creation time, then:
//
//   - the newest KeepLast builds are kept as they are;
//   - the newest build is never deleted by a rule, so an image never
//     disappears from the catalog by pruning (kiln images rm can remove it);
//   - a build older than DeleteAfter is deleted; without DeleteAfter, when
//     KeepLast is set, every build after the newest KeepLast is deleted;
//   - a build older than DeprecateAfter that is not deprecated yet (and not
//     deleted) is deprecated from now.
//
// Images whose builds carry no rule are left alone.
func Plan(root string, now time.Time) ([]Action, error) {
	all, err := List(root, "")
	if err != nil {
		return nil, err
	}
	var builds []Built
	for _, e := range all {
		info, err := ReadInfo(e.Dir)
		if err != nil {
			return nil, err
		}
		builds = append(builds, Built{e, info})
	}
	return PlanBuilds(builds, now), nil
}

// Built is a build and its manifest, for PlanBuilds.
type Built struct {
	Entry    Entry
	Manifest *manifest.Manifest
}

// PlanBuilds is Plan over builds that are listed elsewhere than in a
// catalog directory, such as the builds of a registry (package oci).
func PlanBuilds(builds []Built, now time.Time) []Action {
	type build struct {
		e    Entry
		info *manifest.Manifest
	}
	byName := map[string][]build{}
	var names []string
	for _, b := range builds {
		if byName[b.Entry.Name] == nil {
			names = append(names, b.Entry.Name)
		}
		byName[b.Entry.Name] = append(byName[b.Entry.Name], build{b.Entry, b.Manifest})
	}
	var plan []Action
	for _, name := range names {
		bs := byName[name]
		sort.SliceStable(bs, func(i, j int) bool { // newest first
			a, b := bs[i], bs[j]
			if !a.info.Created.Equal(b.info.Created) {
				return a.info.Created.After(b.info.Created)
			}
			if c := a.e.Version.Compare(b.e.Version); c != 0 {
				return c > 0
			}
			return a.e.Build > b.e.Build
		})
		var rule *manifest.Lifecycle
		for _, b := range bs {
			if b.info.Catalog.Lifecycle != nil {
				rule = b.info.Catalog.Lifecycle
				break
			}
		}
		if rule == nil {
			continue
		}
		for i, b := range bs {
			if i < rule.KeepLast {
				continue
			}
			age := now.Sub(b.info.Created)
			act := Action{Entry: b.e, Created: b.info.Created}
			switch {
			case i > 0 && rule.DeleteAfter > 0 && age >= time.Duration(rule.DeleteAfter):
				act.Do, act.Reason = "delete", fmt.Sprintf("older than delete_after = %s", rule.DeleteAfter)
			case i > 0 && rule.DeleteAfter == 0 && rule.KeepLast > 0:
				act.Do, act.Reason = "delete", fmt.Sprintf("not among the %d newest (keep_last)", rule.KeepLast)
			case rule.DeprecateAfter > 0 && age >= time.Duration(rule.DeprecateAfter) && !b.e.State.Deprecated(now):
				act.Do, act.Reason = "deprecate", fmt.Sprintf("older than deprecate_after = %s", rule.DeprecateAfter)
			default:
				continue
			}
			plan = append(plan, act)
		}
	}
	return plan
}

// Apply carries out a plan made by Plan: deprecations through UpdateState,
// deletions through Remove. It stops at the first failure, or between two
// actions when ctx is cancelled (SIGINT, SIGTERM), and returns the actions
// done; each action is whole or not done at all.
func Apply(ctx context.Context, root string, plan []Action, now time.Time) ([]Action, error) {
	var done []Action
	for _, a := range plan {
		if err := ctx.Err(); err != nil {
			return done, err
		}
		switch a.Do {
		case "deprecate":
			at := now.UTC().Truncate(time.Second)
			if err := UpdateState(a.Entry, func(s *State) error {
				s.DeprecatedAt = &at
				s.History = append(s.History, Change{At: now.UTC(), Action: "deprecate", Detail: "prune: " + a.Reason})
				return nil
			}); err != nil {
				return done, fmt.Errorf("deprecating %s: %w", a.Entry.ID(), err)
			}
		case "delete":
			if err := Remove(root, a.Entry); err != nil {
				return done, fmt.Errorf("deleting %s: %w", a.Entry.ID(), err)
			}
		default:
			return done, fmt.Errorf("unknown prune action %q", a.Do)
		}
		done = append(done, a)
		testhook.At(testhook.PruneActionDone)
	}
	return done, nil
}
