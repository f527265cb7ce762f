package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/hcl/v2"

	"github.com/kiln-build/kiln/builder"
	"github.com/kiln-build/kiln/catalog"
	"github.com/kiln-build/kiln/components"
	"github.com/kiln-build/kiln/internal/cron"
	"github.com/kiln-build/kiln/internal/progress"
	"github.com/kiln-build/kiln/kube"
	"github.com/kiln-build/kiln/oci"
	"github.com/kiln-build/kiln/recipes"
)

const scheduleUsage = `kiln schedule [flags] PIPELINES.hcl

Runs the pipelines of a pipelines file on their cron schedules, in the
foreground, until SIGTERM or SIGINT (see docs/scheduling.md):

  pipeline "nightly-web" {
    recipe       = "web.hcl"        # relative to the pipelines file
    schedule     = "0 3 * * *"      # 5-field cron, @daily, @every 10m, ...
    when         = "inputs-changed" # (default) build only when the inputs changed; or "always"
    time_zone    = "Europe/Berlin"  # default: the host's zone
    max_failures = 3                # consecutive failures that disable it (default 3; 0: never)
    variables    = { suite = "trixie" }
    var_files    = ["prod.vars.hcl"]
    registry     = "oci://registry.example:5000/images/web" # push each build there
    kvm          = true             # --export kubernetes: ask for /dev/kvm
  }

A run is kiln build of the recipe (with --if-changed when when =
"inputs-changed"); the recipe is read again at every run. One run at a time
per pipeline: ticks a run overlaps are skipped and logged. Every run logs one
line when it starts and one with its result (published build, "up to date" or
the error) and duration. A failing run does not stop the service; after
max_failures consecutive failures the pipeline is disabled until the service
restarts, and when every pipeline is disabled kiln exits 1.

SIGTERM or SIGINT interrupts the builds in flight the way Ctrl-C interrupts
kiln build (nothing is published, no process is left) and exits 0.

--export kubernetes prints one batch/v1 CronJob per pipeline instead, for
a cluster to run: its pod pulls the newest build of the version from the
pipeline's registry, runs kiln build --if-changed and pushes the result
(see docs/scaling.md).`

func cmdSchedule(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("schedule", scheduleUsage, stderr)
	images := fs.String("images", defaultImagesDir(), "catalog directory builds are published to (env KILN_IMAGES)")
	cache := fs.String("cache", defaultCacheDir(), "cache directory for bootstrapped bases and build-step layers (env KILN_CACHE; see kiln cache)")
	asJSON := fs.Bool("json", false, "log one JSON object per line instead of text")
	check := fs.Bool("check", false, "check the pipelines file and every pipeline's recipe with its variables, print each pipeline's next run, and exit (2 when a recipe is broken)")
	var ex exportOptions
	fs.StringVar(&ex.format, "export", "", "print the pipelines for another scheduler instead of running them: kubernetes (one CronJob each)")
	fs.StringVar(&ex.image, "image", defaultBuilderImage(), "--export: the builder container image (see docs/scaling.md)")
	fs.StringVar(&ex.context, "context", "", "--export: the directory of recipes the builder image holds (default: the pipelines file's)")
	fs.StringVar(&ex.recipesDir, "recipes-dir", kube.DefaultRecipesDir, "--export: where the builder image holds the --context directory")
	fs.StringVar(&ex.secret, "registry-secret", kube.DefaultRegistrySecret, "--export: the Secret with the registry credentials (dockerconfigjson)")
	file, code := oneArg(fs, args, stderr, "PIPELINES")
	if code >= 0 {
		return code
	}
	p, files, diags := recipes.LoadPipelines(file)
	if *check && *asJSON && diags.HasErrors() {
		writeJSON(stdout, map[string]any{"status": "invalid", "pipelines_file": file, "diagnostics": recipes.DiagnosticsJSON(diags), "pipelines": []any{}})
		return exitUsage
	}
	if len(diags) > 0 {
		recipes.WriteDiagnostics(stderr, files, diags, useColor(stderr))
	}
	if diags.HasErrors() {
		return exitUsage
	}
	if ex.format != "" {
		return exportPipelines(p, ex, stdout, stderr)
	}
	log := &scheduleLog{w: stdout, json: *asJSON}
	var jobs []cron.Job
	for _, pl := range p.Pipelines {
		pl := pl
		jobs = append(jobs, cron.Job{Name: pl.Name, Schedule: pl.Schedule, Location: pl.Location, MaxFailures: pl.MaxFailures,
			Run: func(ctx context.Context) (string, error) {
				return runPipeline(ctx, &pl, *images, *cache, stderr)
			}})
	}
	if *check {
		return checkPipelines(p, time.Now(), *asJSON, stdout, stderr)
	}
	log.line(cron.Event{Time: time.Now(), Kind: "service", Detail: fmt.Sprintf("kiln %s: %d pipeline(s) from %s", Version, len(jobs), p.Path)})
	svc := &cron.Service{Jobs: jobs, Log: log.line}
	disabled := svc.Run(ctx)
	if ctx.Err() != nil {
		log.line(cron.Event{Time: time.Now(), Kind: "service", Detail: "stopped by signal"})
		return exitOK
	}
	log.line(cron.Event{Time: time.Now(), Kind: "service", Detail: fmt.Sprintf("every pipeline is disabled (%d); exiting", disabled)})
	return exitFailed
}

// checkedPipeline is one pipeline as kiln schedule --check --json reports it.
type checkedPipeline struct {
	Name        string                   `json:"name"`
	At          string                   `json:"at"` // the pipeline block, file:line:col
	Recipe      string                   `json:"recipe"`
	Schedule    string                   `json:"schedule"`
	TimeZone    string                   `json:"time_zone"`
	NextRun     string                   `json:"next_run"`
	Status      string                   `json:"status"` // valid or invalid
	Image       string                   `json:"image,omitempty"`
	Version     string                   `json:"version,omitempty"`
	Diagnostics []recipes.JSONDiagnostic `json:"diagnostics"`
}

// checkPipelines is kiln schedule --check: every pipeline's recipe is
// loaded as its runs will load it (its variables, var files and the
// environment), and each pipeline's next run is printed. A broken recipe
// is reported with its pipeline and every diagnostic, and the exit code
// is 2, so that a broken nightly is found now, not at 03:00.
func checkPipelines(p *recipes.Pipelines, now time.Time, asJSON bool, stdout, stderr io.Writer) int {
	out := []checkedPipeline{}
	invalid := 0
	for i := range p.Pipelines {
		pl := &p.Pipelines[i]
		c := checkedPipeline{Name: pl.Name, At: pl.Range.String(), Recipe: pl.Recipe, Schedule: pl.Schedule.String(), TimeZone: pl.Location.String(),
			NextRun: pl.Schedule.Next(now.In(pl.Location)).Format(time.RFC3339), Status: "valid", Diagnostics: []recipes.JSONDiagnostic{}}
		lo := pl.LoadOptions(os.Environ())
		lo.Library = components.Builtin()
		r, files, diags := recipes.Load(pl.Recipe, lo)
		c.Diagnostics = recipes.DiagnosticsJSON(diags)
		if diags.HasErrors() {
			c.Status = "invalid"
			invalid++
		} else {
			c.Image, c.Version = r.Image.Name, r.Image.Version
		}
		out = append(out, c)
		if asJSON {
			continue
		}
		if diags.HasErrors() {
			fmt.Fprintf(stdout, "%s: recipe %s is INVALID: %s\n", pl.Name, pl.Recipe, firstDiagnostic(diags))
			fmt.Fprintf(stderr, "kiln schedule: pipeline %q (%s): recipe %s:\n", pl.Name, c.At, pl.Recipe)
			recipes.WriteDiagnostics(stderr, files, diags, isTerminal(stderr))
			continue
		}
		if len(diags) > 0 {
			recipes.WriteDiagnostics(stderr, files, diags, isTerminal(stderr))
		}
		fmt.Fprintf(stdout, "%s: %q (time zone %s), next run %s; recipe %s: valid (image %s %s)\n",
			pl.Name, c.Schedule, c.TimeZone, c.NextRun, pl.Recipe, c.Image, c.Version)
	}
	code := exitOK
	if invalid > 0 {
		code = exitUsage
	}
	if asJSON {
		status := "valid"
		if invalid > 0 {
			status = "invalid"
		}
		writeJSON(stdout, map[string]any{"status": status, "pipelines_file": p.Path, "diagnostics": []any{}, "pipelines": out})
		return code
	}
	if invalid > 0 {
		fmt.Fprintf(stderr, "kiln schedule: %d of %d pipelines have a broken recipe\n", invalid, len(p.Pipelines))
	}
	return code
}

// runPipeline is one run: kiln build of the pipeline's recipe, in process,
// with --if-changed semantics for when = "inputs-changed".
func runPipeline(ctx context.Context, p *recipes.Pipeline, images, cache string, stderr io.Writer) (string, error) {
	lo := p.LoadOptions(os.Environ())
	lo.Library = components.Builtin()
	r, files, diags := recipes.Load(p.Recipe, lo)
	if diags.HasErrors() {
		var b strings.Builder
		recipes.WriteDiagnostics(&b, files, diags, false)
		fmt.Fprint(stderr, b.String())
		return "", fmt.Errorf("recipe: %s", firstDiagnostic(diags))
	}
	if p.Lifecycle != nil {
		// The pipeline's rule replaces the recipe's; it is recorded in the
		// manifest like the recipe's would be, so kiln images prune uses it.
		r.Image.Lifecycle = p.Lifecycle
	}
	if p.When == recipes.WhenInputsChanged {
		if res := upToDate(ctx, r, images, stderr); res != nil {
			m := res.Newest
			return fmt.Sprintf("up to date (%s/%s/%d)", m.Name, m.Version, m.Build), nil
		}
	}
	if err := checkHost(); err != nil {
		return "", errors.New(oneLine(err.Error()))
	}
	opts, err := buildOptions(images, cache, stderr)
	if err != nil {
		return "", err
	}
	res, err := builder.Build(ctx, r, opts)
	if err != nil {
		return "", errors.New(oneLine(err.Error()))
	}
	m := res.Manifest
	out := fmt.Sprintf("published %s/%s/%d", m.Name, m.Version, m.Build)
	if p.Registry != "" {
		to, err := oci.ParseRef(p.Registry)
		if err == nil {
			var pushed *oci.Pushed
			pushed, err = oci.Push(ctx, res.Path, to, oci.Options{PlainHTTP: p.PlainHTTP, UserAgent: "kiln/" + Version}, p.ContainerDisk)
			if err == nil {
				out += fmt.Sprintf(", pushed to %s@%s", to.URL(), pushed.Digest)
			}
		}
		if err != nil {
			return out, fmt.Errorf("%s, then pushing to %s failed: %s", out, p.Registry, oneLine(err.Error()))
		}
	}
	if p.Lifecycle != nil {
		pruned, err := pruneImage(ctx, images, m.Name, time.Now())
		if err != nil {
			return out, fmt.Errorf("published %s/%s/%d, then pruning failed: %s", m.Name, m.Version, m.Build, oneLine(err.Error()))
		}
		if len(pruned) > 0 {
			out += "; pruned: " + strings.Join(pruned, ", ")
		}
	}
	return out, nil
}

// pruneImage applies the lifecycle rule of one image's builds (see
// catalog.Plan) and returns what it did, such as "delete web/1.0.0/3".
func pruneImage(ctx context.Context, images, name string, now time.Time) ([]string, error) {
	plan, err := catalog.Plan(images, now)
	if err != nil {
		return nil, err
	}
	var mine []catalog.Action
	for _, a := range plan {
		if a.Entry.Name == name {
			mine = append(mine, a)
		}
	}
	done, err := catalog.Apply(ctx, images, mine, now)
	var out []string
	for _, a := range done {
		out = append(out, a.Do+" "+a.Entry.ID())
	}
	return out, err
}

// buildOptions are the builder options kiln build and kiln schedule share.
func buildOptions(images, cache string, stderr io.Writer) (builder.Options, error) {
	opts := builder.Options{
		ImagesDir: images, CacheDir: cache, KilnVersion: Version, Progress: progress.Quiet{},
		Logger: newLogger(stderr),
	}
	if v := os.Getenv("SOURCE_DATE_EPOCH"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n <= 0 {
			return opts, fmt.Errorf("SOURCE_DATE_EPOCH=%q is not a positive number of seconds", v)
		}
		opts.SourceDateEpoch = n
	}
	k, err := loadSignKey("")
	if err != nil {
		return opts, err
	}
	opts.SignKey = k
	return opts, nil
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// scheduleLog writes one line per event, as text or JSON.
type scheduleLog struct {
	mu   sync.Mutex
	w    io.Writer
	json bool
}

func (l *scheduleLog) line(e cron.Event) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.json {
		v := map[string]any{"time": e.Time.UTC().Format(time.RFC3339), "event": e.Kind}
		if e.Job != "" {
			v["pipeline"] = e.Job
		}
		if e.Run > 0 {
			v["run"] = e.Run
		}
		if e.Kind == "ok" || e.Kind == "failed" || e.Kind == "interrupted" {
			v["duration_seconds"] = e.Duration.Seconds()
		}
		if e.Detail != "" {
			v["detail"] = e.Detail
		}
		if e.Failures > 0 {
			v["failures"] = e.Failures
		}
		if e.Skipped > 0 {
			v["skipped"] = e.Skipped
		}
		if !e.Next.IsZero() {
			v["next"] = e.Next.Format(time.RFC3339)
		}
		data, _ := json.Marshal(v)
		fmt.Fprintf(l.w, "%s\n", data)
		return
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s", e.Time.Format(time.RFC3339))
	if e.Job != "" {
		fmt.Fprintf(&b, " %s", e.Job)
	}
	fmt.Fprintf(&b, " %s", e.Kind)
	if e.Run > 0 {
		fmt.Fprintf(&b, " run=%d", e.Run)
	}
	if e.Kind == "ok" || e.Kind == "failed" || e.Kind == "interrupted" {
		fmt.Fprintf(&b, " duration=%s", e.Duration.Round(100*time.Millisecond))
	}
	if e.Failures > 0 {
		fmt.Fprintf(&b, " failures=%d", e.Failures)
	}
	if !e.Next.IsZero() {
		fmt.Fprintf(&b, " next=%s", e.Next.Format(time.RFC3339))
	}
	if e.Detail != "" {
		fmt.Fprintf(&b, " %s", e.Detail)
	}
	fmt.Fprintln(l.w, b.String())
}

// firstDiagnostic is "file:line:col: summary" of the first error, and how
// many more there are; the whole diagnostics go to stderr.
func firstDiagnostic(diags hcl.Diagnostics) string {
	errs := diags.Errs()
	var d *hcl.Diagnostic
	if !errors.As(errs[0], &d) {
		return oneLine(errs[0].Error())
	}
	msg := d.Summary
	if d.Subject != nil {
		msg = fmt.Sprintf("%s:%d:%d: %s", d.Subject.Filename, d.Subject.Start.Line, d.Subject.Start.Column, d.Summary)
	}
	if len(errs) > 1 {
		msg += fmt.Sprintf(" (and %d more error(s))", len(errs)-1)
	}
	return msg
}
