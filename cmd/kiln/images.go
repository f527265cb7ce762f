package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/kiln-build/kiln/catalog"
	"github.com/kiln-build/kiln/internal/semver"
	"github.com/kiln-build/kiln/manifest"
	"github.com/kiln-build/kiln/oci"
)

const imagesUsage = `kiln images <subcommand> [flags] [arguments]

The catalog: the builds kiln build published under --images DIR (default
$KILN_IMAGES, else ./images), as <name>/<version>/<build>/, and the OCI
registries builds are pushed to and pulled from.

Subcommands:
  list      [--name N] [--json]                    every build, with its visibility and deprecation
  show      REF [--include-deprecated] [--json]    one build: manifest summary, state, history
  rm        NAME@VERSION/BUILD                     remove one build (crash-safe)
  deprecate REF [--at DATE] [--undo]               deprecate builds (now, or from DATE), or undo it
  share     REF [--add P]... [--remove P]... [--public | --private]
                                                   change who may use builds
  copy      REF --to DIR                           copy a build to another catalog, checksums verified
  push      REF oci://REGISTRY/REPO [--containerdisk]
                                                   push a build to an OCI registry (docs/registries.md)
  pull      oci://REGISTRY/REPO:TAG                pull a build from a registry into the catalog
  prune     [--dry-run] [--json] [--registry oci://REGISTRY/REPO]
                                                   apply the builds' lifecycle rules
  check     [--repair] [--json]                    find every inconsistency; repair what the manifests allow

REF is NAME, NAME@SELECTOR or NAME@VERSION/BUILD. SELECTOR is a version or an
x-wildcard ("1.x.x" is the newest 1.*.*, "x.x.x" the newest of all): show and
copy pick the newest build it matches, skipping deprecated builds unless
--include-deprecated is given. deprecate and share take NAME@VERSION (every
build of that version) or NAME@VERSION/BUILD. DATE is YYYY-MM-DD (UTC) or
RFC 3339. Every subcommand first removes what dead processes left in the
catalog (staging of killed builds, unfinished removals). A damaged build
(unreadable manifest.json or catalog.json) is listed as damaged, never
picked, copied, pruned or changed; rm removes it. See docs/catalog.md.`

func cmdImages(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return runSubcommand(ctx, "images", imagesUsage, imagesSubcommands(), args, stdout, stderr)
}

// imagesSubcommands is the table of kiln images subcommands; completion and
// the man page read it too.
func imagesSubcommands() []subcommand {
	return []subcommand{
		{"list", "every build, with its visibility and deprecation", imagesList},
		{"show", "one build: manifest summary, state, history", imagesShow},
		{"rm", "remove one build (crash-safe)", imagesRm},
		{"deprecate", "deprecate builds (now, or from DATE), or undo it", imagesDeprecate},
		{"share", "change who may use builds", imagesShare},
		{"copy", "copy a build to another catalog, checksums verified", imagesCopy},
		{"push", "push a build to an OCI registry", imagesPush},
		{"pull", "pull a build from an OCI registry into the catalog", imagesPull},
		{"prune", "apply the builds' lifecycle rules, in the catalog or a registry", imagesPrune},
		{"check", "find every inconsistency; repair what the manifests allow", imagesCheck},
	}
}

// imagesFlags are the flags every images subcommand takes.
func imagesFlags(name, usage string, stderr io.Writer) (*flag.FlagSet, *string) {
	fs := newFlagSet("images "+name, usage, stderr)
	root := fs.String("images", defaultImagesDir(), "catalog directory (env KILN_IMAGES)")
	return fs, root
}

// openCatalog is where every images subcommand starts, once its flags are
// parsed: it removes what dead processes left in the catalog (catalog.Sweep)
// and returns root.
func openCatalog(root string) string {
	catalog.Sweep(root)
	return root
}

func imagesErr(stderr io.Writer, err error) int {
	fmt.Fprintf(stderr, "kiln images: %v\n", err)
	return exitFailed
}

// oneArg parses flags and wants exactly one positional argument.
// listItem is one build in kiln images list --json. Status is "ok", or
// "damaged" for a build the catalog cannot read: then Damage says why, and
// only the identity and path are set.
type listItem struct {
	ID           string     `json:"id"`
	Name         string     `json:"name"`
	Version      string     `json:"version"`
	Build        int        `json:"build"`
	Path         string     `json:"path"`
	Status       string     `json:"status"`
	Damage       string     `json:"damage,omitempty"`
	Created      *time.Time `json:"created,omitempty"`
	Visibility   string     `json:"visibility,omitempty"`
	SharedWith   []string   `json:"shared_with,omitempty"`
	Deprecated   bool       `json:"deprecated"`
	DeprecatedAt *time.Time `json:"deprecated_at,omitempty"`
}

func item(e catalog.Entry, info *manifest.Manifest, now time.Time) listItem {
	created := info.Created
	return listItem{ID: e.ID(), Name: e.Name, Version: e.Version.String(), Build: e.Build, Path: e.Dir, Status: "ok", Created: &created,
		Visibility: e.State.EffectiveVisibility(), SharedWith: e.State.SharedWith,
		Deprecated: e.State.Deprecated(now), DeprecatedAt: e.State.DeprecatedAt}
}

func damagedItem(d catalog.Damaged) listItem {
	return listItem{ID: d.ID(), Name: d.Name, Version: d.Version.String(), Build: d.Build, Path: d.Dir, Status: "damaged", Damage: d.Reason}
}

func deprecationText(s catalog.State, now time.Time) string {
	switch {
	case s.DeprecatedAt == nil:
		return "-"
	case s.Deprecated(now):
		return "since " + s.DeprecatedAt.Format(time.DateOnly)
	default:
		return "from " + s.DeprecatedAt.Format(time.DateOnly)
	}
}

func imagesList(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs, root := imagesFlags("list", "kiln images list [--name N] [--json] [--images DIR]", stderr)
	name := fs.String("name", "", "only the builds of this image")
	asJSON := fs.Bool("json", false, "print a JSON array")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return flagError(err)
	}
	if len(pos) != 0 {
		fmt.Fprintln(stderr, "kiln images list: takes no arguments (use --name)")
		return exitUsage
	}
	es, damaged, err := catalog.Scan(openCatalog(*root), *name)
	if err != nil {
		return imagesErr(stderr, err)
	}
	now := time.Now()
	items := []listItem{}
	for _, e := range es {
		info, err := catalog.ReadInfo(e.Dir)
		if err != nil { // damaged since the scan
			items = append(items, damagedItem(catalog.Damaged{Name: e.Name, Version: e.Version, Build: e.Build, Dir: e.Dir, Reason: err.Error()}))
			continue
		}
		items = append(items, item(e, info, now))
	}
	for _, d := range damaged {
		items = append(items, damagedItem(d))
	}
	sort.SliceStable(items, func(i, j int) bool { return lessItem(items[i], items[j]) })
	// A damaged build costs a warning, not the listing: the good builds stay
	// in view for the scripts that read them, and kiln images check is the
	// command whose exit code says the catalog is damaged.
	if len(damaged) > 0 {
		fmt.Fprintf(stderr, "kiln images: warning: %d damaged build(s) listed as damaged; kiln images check says what is wrong and --repair fixes what it can\n", len(damaged))
	}
	if *asJSON {
		return writeJSON(stdout, items)
	}
	if len(items) == 0 {
		fmt.Fprintf(stdout, "no builds in %s\n", *root)
		return exitOK
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tVERSION\tBUILD\tCREATED\tVISIBILITY\tDEPRECATED")
	for _, it := range items {
		if it.Status != "ok" {
			fmt.Fprintf(tw, "%s\t%s\t%d\tDAMAGED: %s\t\t\n", it.Name, it.Version, it.Build, it.Damage)
			continue
		}
		vis := it.Visibility
		if len(it.SharedWith) > 0 {
			vis += " (" + strings.Join(it.SharedWith, ",") + ")"
		}
		dep := deprecationText(catalog.State{DeprecatedAt: it.DeprecatedAt}, now)
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\n", it.Name, it.Version, it.Build, it.Created.UTC().Format("2006-01-02 15:04"), vis, dep)
	}
	tw.Flush()
	return exitOK
}

// lessItem orders list items by name, version and build.
func lessItem(a, b listItem) bool {
	if a.Name != b.Name {
		return a.Name < b.Name
	}
	va, _ := semver.Parse(a.Version)
	vb, _ := semver.Parse(b.Version)
	if c := va.Compare(vb); c != 0 {
		return c < 0
	}
	return a.Build < b.Build
}

func imagesShow(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs, root := imagesFlags("show", "kiln images show REF [--include-deprecated] [--json | --manifest] [--images DIR]", stderr)
	incDep := fs.Bool("include-deprecated", false, "let wildcards pick deprecated builds")
	asJSON := fs.Bool("json", false, "print JSON")
	asManifest := fs.Bool("manifest", false, "print the build's manifest.json as it is stored")
	arg, code := oneArg(fs, args, stderr, "")
	if code >= 0 {
		return code
	}
	ref, err := catalog.ParseRef(arg)
	if err != nil {
		fmt.Fprintf(stderr, "kiln images show: %v\n", err)
		return exitUsage
	}
	now := time.Now()
	e, err := catalog.Select(openCatalog(*root), ref, *incDep, now)
	if err != nil {
		return imagesErr(stderr, err)
	}
	if *asManifest {
		data, err := os.ReadFile(filepath.Join(e.Dir, manifest.FileName))
		if err != nil {
			return imagesErr(stderr, err)
		}
		_, err = stdout.Write(data)
		if err != nil {
			return exitFailed
		}
		return exitOK
	}
	info, err := catalog.ReadInfo(e.Dir)
	if err != nil {
		return imagesErr(stderr, err)
	}
	if *asJSON {
		return writeJSON(stdout, map[string]any{"build": item(e, info, now), "state": e.State, "catalog": info.Catalog, "outputs": info.Outputs})
	}
	fmt.Fprintf(stdout, "%s\n  path:       %s\n  created:    %s\n", e.ID(), e.Dir, info.Created.UTC().Format(time.RFC3339))
	vis := e.State.EffectiveVisibility()
	if len(e.State.SharedWith) > 0 {
		vis += " with " + strings.Join(e.State.SharedWith, ", ")
	}
	fmt.Fprintf(stdout, "  visibility: %s\n  deprecated: %s\n", vis, deprecationText(e.State, now))
	if c := info.Catalog; c.Encrypted || len(c.ProductCodes) > 0 {
		fmt.Fprintf(stdout, "  cannot be public: encrypted=%v product_codes=%v\n", c.Encrypted, c.ProductCodes)
	}
	if lc := info.Catalog.Lifecycle; lc != nil {
		fmt.Fprintf(stdout, "  lifecycle:  keep_last=%d deprecate_after=%s delete_after=%s\n", lc.KeepLast, ageText(lc.DeprecateAfter), ageText(lc.DeleteAfter))
	}
	for _, o := range info.Outputs {
		fmt.Fprintf(stdout, "  output:     %-6s %s (sha256 %s)\n", o.Format, o.File, o.SHA256)
	}
	for _, h := range e.State.History {
		fmt.Fprintf(stdout, "  history:    %s %s %s\n", h.At.UTC().Format(time.RFC3339), h.Action, h.Detail)
	}
	return exitOK
}

func ageText(a manifest.Age) string {
	if a == 0 {
		return "-"
	}
	return a.String()
}

// exactRef parses NAME@VERSION or NAME@VERSION/BUILD (no wildcard).
func exactRef(arg string) (catalog.Ref, error) {
	ref, err := catalog.ParseRef(arg)
	if err != nil {
		return ref, err
	}
	if !ref.Selector.Exact() {
		return ref, fmt.Errorf("%q: name an exact version (NAME@1.2.0 for all its builds, or NAME@1.2.0/3), not a wildcard", arg)
	}
	return ref, nil
}

// exactBuilds lists the builds an exact ref names (every build of the
// version without a build number), deprecated or not. A damaged build
// among them is an error that says what is wrong, unless damagedToo is set
// (kiln images rm): then it is returned as an Entry with the zero State.
func exactBuilds(root string, ref catalog.Ref, damagedToo bool) ([]catalog.Entry, error) {
	all, damaged, err := catalog.Scan(root, ref.Name)
	if err != nil {
		return nil, err
	}
	matches := func(v semver.Version, b int) bool {
		return ref.Selector.Matches(v) && (ref.Build == 0 || b == ref.Build)
	}
	var out []catalog.Entry
	for _, d := range damaged {
		if !matches(d.Version, d.Build) {
			continue
		}
		if !damagedToo {
			return nil, fmt.Errorf("%s is damaged (%s) and is not changed; kiln images check --repair recreates what it can, kiln images rm removes it", d.ID(), d.Reason)
		}
		out = append(out, d.Entry())
	}
	for _, e := range all {
		if matches(e.Version, e.Build) {
			out = append(out, e)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no build of %s in the catalog %s matches %s", ref.Name, root, ref)
	}
	return out, nil
}

func usageErr(stderr io.Writer, fs *flag.FlagSet, err error) int {
	fmt.Fprintf(stderr, "kiln %s: %v\n", fs.Name(), err)
	return exitUsage
}

func imagesRm(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs, root := imagesFlags("rm", "kiln images rm NAME@VERSION/BUILD [--images DIR]\n\nRemoves one build: under the version's lock it is renamed out of the\ncatalog, then deleted. Its build number is never handed out again.", stderr)
	arg, code := oneArg(fs, args, stderr, "")
	if code >= 0 {
		return code
	}
	ref, err := exactRef(arg)
	if err != nil {
		return usageErr(stderr, fs, err)
	}
	if ref.Build == 0 {
		return usageErr(stderr, fs, fmt.Errorf("%q: name one build, such as %s@1.2.0/3", arg, ref.Name))
	}
	es, err := exactBuilds(openCatalog(*root), ref, true)
	if err != nil {
		return imagesErr(stderr, err)
	}
	if err := catalog.Remove(*root, es[0]); err != nil {
		return imagesErr(stderr, err)
	}
	fmt.Fprintf(stdout, "removed %s\n", es[0].ID())
	return exitOK
}

func parseDate(s string) (time.Time, error) {
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t.UTC(), nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t.UTC(), nil
	}
	return time.Time{}, fmt.Errorf("%q is not a date: write YYYY-MM-DD (UTC midnight) or RFC 3339, such as 2027-01-31 or 2027-01-31T12:00:00Z", s)
}

func imagesDeprecate(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs, root := imagesFlags("deprecate", "kiln images deprecate NAME@VERSION[/BUILD] [--at DATE] [--undo] [--images DIR]\n\nDeprecated builds stay listed, but wildcards skip them unless\n--include-deprecated is given. A public build cannot be deprecated later\nthan two years after its creation, nor undeprecated: make it private first.", stderr)
	atFlag := fs.String("at", "", "deprecate from this date (YYYY-MM-DD or RFC 3339; default now)")
	undo := fs.Bool("undo", false, "cancel the deprecation")
	arg, code := oneArg(fs, args, stderr, "")
	if code >= 0 {
		return code
	}
	now := time.Now()
	at := now
	if *atFlag != "" {
		if *undo {
			return usageErr(stderr, fs, errors.New("--at and --undo do not go together"))
		}
		t, err := parseDate(*atFlag)
		if err != nil {
			return usageErr(stderr, fs, err)
		}
		at = t
	}
	return eachExactBuild(*root, arg, fs, stderr, func(e catalog.Entry) error {
		if *undo {
			if _, err := catalog.Undeprecate(e, now); err != nil {
				return err
			}
			fmt.Fprintf(stdout, "%s: not deprecated\n", e.ID())
			return nil
		}
		st, err := catalog.Deprecate(e, at, now)
		if err == nil {
			fmt.Fprintf(stdout, "%s: deprecated %s\n", e.ID(), deprecationText(st, now))
		}
		return err
	})
}

// eachExactBuild applies change to every build that NAME@VERSION[/BUILD]
// names, in order, and stops at the first error.
func eachExactBuild(root, arg string, fs *flag.FlagSet, stderr io.Writer, change func(catalog.Entry) error) int {
	ref, err := exactRef(arg)
	if err != nil {
		return usageErr(stderr, fs, err)
	}
	es, err := exactBuilds(openCatalog(root), ref, false)
	if err != nil {
		return imagesErr(stderr, err)
	}
	for _, e := range es {
		if err := change(e); err != nil {
			return imagesErr(stderr, err)
		}
	}
	return exitOK
}

func imagesShare(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs, root := imagesFlags("share", "kiln images share NAME@VERSION[/BUILD] [--add P]... [--remove P]... [--public | --private] [--images DIR]\n\nChanges who may use builds; every change is recorded in the build's\nhistory. An encrypted build, or one with product codes, cannot be public.\nA public build is deprecated two years after its creation at the latest.", stderr)
	var add, remove multiFlag
	fs.Var(&add, "add", "share with this principal (repeatable)")
	fs.Var(&remove, "remove", "stop sharing with this principal (repeatable)")
	public := fs.Bool("public", false, "make the builds public")
	private := fs.Bool("private", false, "make the builds private (clears the principals)")
	arg, code := oneArg(fs, args, stderr, "")
	if code >= 0 {
		return code
	}
	if len(add) == 0 && len(remove) == 0 && !*public && !*private {
		return usageErr(stderr, fs, errors.New("say what to change: --add, --remove, --public or --private"))
	}
	return eachExactBuild(*root, arg, fs, stderr, func(e catalog.Entry) error {
		st, err := catalog.Share(e, catalog.ShareChange{Add: add, Remove: remove, Public: *public, Private: *private}, time.Now())
		if err != nil {
			return err
		}
		vis := st.EffectiveVisibility()
		if len(st.SharedWith) > 0 {
			vis += " (" + strings.Join(st.SharedWith, ", ") + ")"
		}
		fmt.Fprintf(stdout, "%s: %s\n", e.ID(), vis)
		return nil
	})
}

func imagesCopy(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs, root := imagesFlags("copy", "kiln images copy REF --to DIR [--include-deprecated] [--images DIR]\n\nCopies a build, keeping its name, version and build number, to the\ncatalog DIR, verifying every file's sha256 there before publishing it.", stderr)
	to := fs.String("to", "", "the destination catalog directory")
	incDep := fs.Bool("include-deprecated", false, "let wildcards pick deprecated builds")
	arg, code := oneArg(fs, args, stderr, "")
	if code >= 0 {
		return code
	}
	if *to == "" {
		return usageErr(stderr, fs, errors.New("--to DIR is required"))
	}
	ref, err := catalog.ParseRef(arg)
	if err != nil {
		return usageErr(stderr, fs, err)
	}
	e, err := catalog.Select(openCatalog(*root), ref, *incDep, time.Now())
	if err != nil {
		return imagesErr(stderr, err)
	}
	out, copied, err := catalog.Distribute(ctx, e, *to, time.Now())
	if err != nil {
		return imagesErr(stderr, err)
	}
	if copied {
		fmt.Fprintf(stdout, "copied %s to %s (checksums verified)\n", e.ID(), out.Dir)
	} else {
		fmt.Fprintf(stdout, "%s is already in %s\n", e.ID(), out.Dir)
	}
	return exitOK
}

func imagesPrune(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs, root := imagesFlags("prune", "kiln images prune [--dry-run] [--json] [--images DIR | --registry oci://REGISTRY/REPO]\n\nApplies the lifecycle rules recorded in the builds' manifests (see\ndocs/catalog.md) and prints each deprecation and deletion. --dry-run prints\nthe same plan and changes nothing. With --registry, the builds pushed to a\nregistry repository are pruned: a deleted build loses its manifest and tags;\na registry keeps no deprecation, so deprecations are printed only.", stderr)
	dry := fs.Bool("dry-run", false, "print what would be done, change nothing")
	asJSON := fs.Bool("json", false, "print the actions as a JSON array")
	registry := fs.String("registry", "", "prune the builds of a registry repository (oci://REGISTRY/REPO) instead of the catalog")
	plainHTTP := fs.Bool("plain-http", false, "with --registry: plain HTTP to a registry that is not on loopback")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return flagError(err)
	}
	if len(pos) != 0 {
		return usageErr(stderr, fs, errors.New("takes no arguments"))
	}
	now := time.Now()
	var done []catalog.Action
	var applyErr error
	if *registry != "" {
		ref, err := parseOCI(*registry)
		if err != nil {
			return usageErr(stderr, fs, err)
		}
		done, applyErr = oci.Prune(ctx, ref, oci.Options{PlainHTTP: *plainHTTP, UserAgent: "kiln/" + Version}, now, *dry)
	} else {
		plan, err := catalog.Plan(openCatalog(*root), now)
		if err != nil {
			return imagesErr(stderr, err)
		}
		done = plan
		if !*dry {
			done, applyErr = catalog.Apply(ctx, *root, plan, now)
		}
	}
	if *asJSON {
		type action struct {
			Action  string    `json:"action"`
			ID      string    `json:"id"`
			Created time.Time `json:"created"`
			Reason  string    `json:"reason"`
		}
		out := []action{}
		for _, a := range done {
			out = append(out, action{a.Do, a.Entry.ID(), a.Created, a.Reason})
		}
		code := writeJSON(stdout, map[string]any{"dry_run": *dry, "actions": out})
		if applyErr != nil {
			return imagesErr(stderr, applyErr)
		}
		return code
	}
	prefix := ""
	if *dry {
		prefix = "would "
	}
	for _, a := range done {
		fmt.Fprintf(stdout, "%s%s\n", prefix, a)
	}
	if applyErr != nil {
		return imagesErr(stderr, applyErr)
	}
	if len(done) == 0 {
		fmt.Fprintln(stdout, "nothing to prune")
	}
	return exitOK
}
