package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/kiln-build/kiln/base"
	"github.com/kiln-build/kiln/builder"
	"github.com/kiln-build/kiln/internal/units"
	"github.com/kiln-build/kiln/layers"
)

const cacheUsage = `kiln cache <subcommand> [flags]

The cache directory (--cache DIR, default $KILN_CACHE, else /var/cache/kiln
as root) holds what makes rebuilds fast: bootstrapped Debian bases (bases/)
and the layers of build steps (layers/), each a step's changes to the tree,
keyed by the layer below it and the step's script, files and environment.

Subcommands:
  ls     [--json]                              every cached base and layer: key, image and step, size, age, last use
  prune  [--keep-days N] [--dry-run] [--json]  remove bases and layers not used in the last N days (default 30),
                                               layers whose parent layer is gone, and what killed builds left

A build that is using an entry is never disturbed: prune waits for it.
--keep-days 0 removes every entry not in use now. See docs/cli.md.`

func cmdCache(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return runSubcommand(ctx, "cache", cacheUsage, cacheSubcommands(), args, stdout, stderr)
}

// cacheSubcommands is the table of kiln cache subcommands; completion and
// the man page read it too.
func cacheSubcommands() []subcommand {
	return []subcommand{
		{"ls", "every cached base and layer", cacheLs},
		{"prune", "remove bases and layers not used lately", cachePrune},
	}
}

func cacheFlags(name, usage string, stderr io.Writer) (*flag.FlagSet, *string, *bool) {
	fs := newFlagSet("cache "+name, usage, stderr)
	dir := fs.String("cache", defaultCacheDir(), "cache directory (env KILN_CACHE)")
	asJSON := fs.Bool("json", false, "print JSON")
	return fs, dir, asJSON
}

// cacheItem is one row of kiln cache ls and prune.
type cacheItem struct {
	Kind     string    `json:"kind"` // base or layer
	Key      string    `json:"key"`
	What     string    `json:"what"`           // a base's suite, variant and arch; a layer's image
	Step     string    `json:"step,omitempty"` // a layer's step
	Depth    int       `json:"depth"`          // a layer's position among the build steps, from 0
	Size     int64     `json:"size"`
	Created  time.Time `json:"created"`
	LastUsed time.Time `json:"last_used"`
	Path     string    `json:"path"`
}

func baseItems(es []base.CacheEntry) []cacheItem {
	out := []cacheItem{}
	for _, e := range es {
		out = append(out, cacheItem{Kind: "base", Key: e.Key, What: fmt.Sprintf("debian %s %s %s", e.Inputs.Suite, e.Inputs.Variant, e.Inputs.Arch),
			Size: e.Size, Created: e.Created, LastUsed: e.LastUsed, Path: e.Dir})
	}
	return out
}

func layerItems(es []layers.Entry) []cacheItem {
	out := []cacheItem{}
	for _, e := range es {
		out = append(out, cacheItem{Kind: "layer", Key: e.Key, What: e.Image, Step: e.Step, Depth: e.Depth,
			Size: e.Size, Created: e.Created, LastUsed: e.LastUsed, Path: e.Dir})
	}
	// Each image's layers in step order.
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].What != out[j].What {
			return out[i].What < out[j].What
		}
		return out[i].Depth < out[j].Depth
	})
	return out
}

func cacheLs(_ context.Context, args []string, stdout, stderr io.Writer) int {
	fs, dir, asJSON := cacheFlags("ls", "kiln cache ls [--cache DIR] [--json]", stderr)
	if code := noArgs(fs, args, stderr); code >= 0 {
		return code
	}
	bs, err := base.CachedBases(*dir)
	if err != nil {
		return cacheErr(stderr, err)
	}
	ls, err := layers.Open(builder.LayersDir(*dir)).List()
	if err != nil {
		return cacheErr(stderr, err)
	}
	items := append(baseItems(bs), layerItems(ls)...)
	if *asJSON {
		return writeJSON(stdout, items)
	}
	if len(items) == 0 {
		fmt.Fprintf(stdout, "nothing cached in %s\n", *dir)
		return exitOK
	}
	printCacheItems(stdout, items, time.Now())
	return exitOK
}

func printCacheItems(w io.Writer, items []cacheItem, now time.Time) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "KIND\tKEY\tIMAGE / BASE\tSTEP\tSIZE\tAGE\tLAST USED")
	var total int64
	count := map[string]int{}
	for _, it := range items {
		step := "-"
		if it.Kind == "layer" {
			step = fmt.Sprintf("%d %s", it.Depth+1, it.Step)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s ago\n", it.Kind, shortKey(it.Key), it.What, step,
			units.ApproxSize(uint64(it.Size)), since(now, it.Created), since(now, it.LastUsed))
		total += it.Size
		count[it.Kind]++
	}
	tw.Flush()
	fmt.Fprintf(w, "%d base(s), %d layer(s), %s\n", count["base"], count["layer"], units.ApproxSize(uint64(total)))
}

func cachePrune(_ context.Context, args []string, stdout, stderr io.Writer) int {
	fs, dir, asJSON := cacheFlags("prune", "kiln cache prune [--keep-days N] [--dry-run] [--cache DIR] [--json]", stderr)
	keep := fs.Int("keep-days", 30, "keep entries used in the last N days")
	dryRun := fs.Bool("dry-run", false, "say what would be removed, remove nothing")
	if code := noArgs(fs, args, stderr); code >= 0 {
		return code
	}
	if *keep < 0 {
		fmt.Fprintln(stderr, "kiln cache prune: --keep-days must be 0 or more")
		return exitUsage
	}
	now := time.Now()
	cutoff := now.Add(-time.Duration(*keep) * units.Day)
	ls, err := layers.Open(builder.LayersDir(*dir)).Prune(cutoff, *dryRun)
	if err != nil {
		return cacheErr(stderr, err)
	}
	bs, err := base.PruneBases(*dir, cutoff, *dryRun)
	if err != nil {
		return cacheErr(stderr, err)
	}
	items := append(baseItems(bs), layerItems(ls)...)
	if *asJSON {
		return writeJSON(stdout, map[string]any{"dry_run": *dryRun, "removed": items})
	}
	verb := "removed"
	if *dryRun {
		verb = "would remove"
	}
	if len(items) == 0 {
		fmt.Fprintf(stdout, "nothing to remove: every entry in %s was used in the last %d day(s)\n", *dir, *keep)
		return exitOK
	}
	fmt.Fprintf(stdout, "%s:\n", verb)
	printCacheItems(stdout, items, now)
	return exitOK
}

// noArgs parses flags and wants no positional argument; it returns -1 to go on.
func noArgs(fs *flag.FlagSet, args []string, stderr io.Writer) int {
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return flagError(err)
	}
	if len(pos) != 0 {
		fmt.Fprintf(stderr, "kiln %s: takes no arguments: %s\n", fs.Name(), strings.Join(pos, " "))
		return exitUsage
	}
	return -1
}

func cacheErr(stderr io.Writer, err error) int {
	fmt.Fprintf(stderr, "kiln cache: %v\n", err)
	return exitFailed
}

func shortKey(k string) string {
	if len(k) > 12 {
		return k[:12]
	}
	return k
}

// since is how long ago t was, rounded for reading: 45s, 12m, 5h, 3d.
func since(now, t time.Time) string {
	d := now.Sub(t)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < units.Day:
		return fmt.Sprintf("%dh", int(d.Hours()))
	}
	return fmt.Sprintf("%dd", int(d/units.Day))
}
