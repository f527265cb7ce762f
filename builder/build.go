// Package builder turns a parsed recipe into a tested, published image.
//
// Build is a runner over a flat list of stages (stages.go), mkosi's shape:
// base, build steps, configure, generalise, bootloader, disk, test,
// outputs, publish, distribute. Each stage is a function over one typed
// build state and returns early when it does not apply; the runner logs
// and reports each stage, names it in every error ("stage disk: ..."),
// and records its timing once. Everything is assembled in a staging
// directory that is renamed into the catalog only when every stage before
// publish has passed, so a failed or killed build publishes nothing; the
// manifest is written once, from the state, in the publish stage.
//
// It does not parse recipes (package recipes), write disk formats (package
// formats), boot images (package boottest) or talk to the user (the CLI
// passes a progress.Reporter and a log writer).
package builder

import (
	"context"
	"crypto/ecdsa"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/kiln-build/kiln/bootloader"
	"github.com/kiln-build/kiln/boottest"
	"github.com/kiln-build/kiln/catalog"
	"github.com/kiln-build/kiln/disk"
	"github.com/kiln-build/kiln/internal/progress"
	"github.com/kiln-build/kiln/internal/redact"
	"github.com/kiln-build/kiln/internal/testhook"
	"github.com/kiln-build/kiln/manifest"
	"github.com/kiln-build/kiln/platform"
	"github.com/kiln-build/kiln/recipes"
	"github.com/kiln-build/kiln/sbom"
)

// OnError is what a failed build keeps (kiln build --on-error).
type OnError string

const (
	OnErrorCleanup OnError = "cleanup" // remove everything but the logs (the default)
	OnErrorKeep    OnError = "keep"    // also keep the tree or the disk, to look inside
	OnErrorAsk     OnError = "ask"     // let Options.Ask decide, stage by stage
)

// Decision is what Options.Ask decides after a stage failed.
type Decision int

const (
	Cleanup Decision = iota // give up: remove everything but the logs
	Keep                    // give up, keeping the tree or the disk as OnErrorKeep does
	Retry                   // run the failed stage again
)

// Paused describes a failed stage while the build waits for Options.Ask:
// nothing has been cleaned up yet.
type Paused struct {
	Stage   string
	Err     error
	Attempt int // 1 for the first failure of the stage
	// Tree is the root tree while it exists (the build failed before the
	// disk stage removed it); a person may look into it, and change it,
	// with Shell before deciding.
	Tree string
	// Disk is the raw disk once the disk stage wrote it (the tests boot a
	// throwaway copy, so it never holds the test harness).
	Disk string
	// CanRetry says whether Retry is allowed: the stage can run again on
	// the state it left (the build stage resumes at the failed step).
	CanRetry bool
}

// Options are the knobs of one build that do not come from the recipe.
type Options struct {
	ImagesDir       string // the catalog root
	CacheDir        string // base cache (bases/) and layer cache (layers/); "" caches no layers
	KilnVersion     string
	RefreshBase     bool  // bootstrap even if a cached base exists
	RefreshSteps    bool  // run every build step even if its layer is cached, and store it again
	SourceDateEpoch int64 // SOURCE_DATE_EPOCH; 0 = from the inputs (see resolveSourceDate)
	// SignKey, when set, signs the provenance and manifest.json.
	SignKey  *ecdsa.PrivateKey
	Progress progress.Reporter
	Logger   *slog.Logger
	// LogCopy, when set, receives a copy of the build log as it is written.
	LogCopy io.Writer
	// OnError is OnErrorCleanup ("" means it), OnErrorKeep or OnErrorAsk.
	OnError OnError
	// Ask, with OnErrorAsk, is called when a stage fails, before anything
	// is cleaned up, and decides what happens. A nil Ask decides Cleanup.
	Ask func(ctx context.Context, p Paused) Decision
}

// Result is a published build.
type Result struct {
	Path     string // the published directory
	Manifest *manifest.Manifest
	Copies   []string // the build's copies in the recipe's distribute targets
}

// state is what the stages share. Each field is set by one stage and read
// by the ones after it.
type state struct {
	recipe *recipes.Recipe
	img    recipes.Image
	opts   Options
	log    io.Writer

	staging *catalog.Staging
	files   artifactFiles
	tree    string // the root tree, until the disk stage has written it
	baseID  string // names the tree the base stage made: the layer cache's root
	// buildRan is set once the build stage has run steps in the tree: run
	// again (--on-error=ask), it resumes on a tree the layer cache cannot
	// name.
	buildRan bool
	raw      string // the raw disk image in staging

	m *manifest.Manifest // the record, written once by the publish stage

	inventory  *sbom.Inventory  // the tree's packages, for the manifest and the SBOMs
	releaseURL string           // the InRelease file of a Debian base
	redactor   *redact.Redactor // hides the recipe's sensitive values
	flushLog   func()           // writes what the log's redactor holds back
	started    time.Time

	layout  *disk.Layout
	bootCfg bootloader.Config
	esp     []disk.File     // the ESP's files (UEFI)
	coreImg []byte          // GRUB's BIOS core image
	bootImg []byte          // GRUB's BIOS boot sector
	rawSum  string          // the raw image's sha256 once written
	pending *pendingOutputs // outputs being written while the test stage runs

	stageStart time.Time // of the running stage
	keep       bool      // Options.Ask decided Keep
	published  string    // the build's directory in the catalog
	copies     []string
}

// stage is one step of the pipeline. skip, when set, says the stage does
// not apply to this build; describe is its progress line.
type stage struct {
	name     string
	skip     func(*state) bool
	describe func(*state) string
	run      func(context.Context, *state) (note string, err error)
	// retry, when set, makes the stage safe to run again after it failed
	// (with OnErrorAsk); a stage without it is not retried.
	retry func(*state) error
}

// Build runs the whole pipeline for r.
func Build(ctx context.Context, r *recipes.Recipe, o Options) (*Result, error) {
	if o.Progress == nil {
		o.Progress = progress.Quiet{}
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	img := r.Image
	s := &state{recipe: r, img: img, opts: o, files: newArtifactFiles(img), redactor: newRedactor(r), started: time.Now()}
	s.m = &manifest.Manifest{
		SchemaVersion: manifest.SchemaVersion,
		Name:          img.Name,
		Version:       img.Version,
		KilnVersion:   o.KilnVersion,
		Recipe:        recipeRecord(r),
		Boot: manifest.Boot{Firmware: platform.Firmware(img.Boot.Firmware), PartitionTable: platform.Table(img.Disk.Table), Bootloader: "grub",
			SecureBoot: img.Boot.SecureBoot, TPM: img.Boot.TPM, TCGCPU: img.Boot.TCGCPU, Chain: []manifest.BootFile{}},
		Tests:      []manifest.TestResult{},
		BuildSteps: []manifest.StepRecord{},
		Catalog:    CatalogSpec(img),
		Components: manifestComponents(img.Components),
		Lint:       manifest.Lint{Allow: img.Lint.Allow, Allowed: []manifest.LintFinding{}},
		SBOMs:      []manifest.SBOM{},
		Provenance: provenanceRecord(o),
	}

	var err error
	if s.staging, err = catalog.NewStaging(o.ImagesDir); err != nil {
		return nil, fmt.Errorf("creating the staging directory: %w", err)
	}
	defer s.staging.Discard()
	defer s.stopOutputs() // first: nothing writes into staging while it goes
	logFile, err := os.Create(filepath.Join(s.staging.Artifact, s.files.buildLog))
	if err != nil {
		return nil, err
	}
	defer logFile.Close()
	var logTo io.Writer = logFile
	if o.LogCopy != nil {
		logTo = io.MultiWriter(logFile, o.LogCopy)
	}
	logw := s.redactor.Writer(logTo)
	s.log, s.flushLog = logw, func() { _ = logw.Flush() }
	defer s.flushLog()
	s.tree = filepath.Join(s.staging.Work, "tree")
	s.raw = filepath.Join(s.staging.Artifact, img.Name+".raw")

	for _, st := range stages {
		if st.skip != nil && st.skip(s) {
			continue
		}
		what := st.describe(s)
		fmt.Fprintf(s.log, "\n=== stage %s: %s\n", st.name, what)
		testhook.At(testhook.Stage + st.name)
		s.stageStart = time.Now()
		o.Logger.Info("stage started", "stage", st.name, "what", what)
		note, end, err := s.runStage(ctx, st, what)
		if err != nil {
			s.stopOutputs()
			end("failed")
			o.Logger.Info("stage failed", "stage", st.name, "seconds", roundSeconds(time.Since(s.stageStart)))
			// failed fills in a test failure's logs first
			return nil, s.redactor.Error(fmt.Errorf("stage %s: %w", st.name, s.failed(err)))
		}
		o.Logger.Info("stage done", "stage", st.name, "seconds", roundSeconds(time.Since(s.stageStart)), "note", note)
		if s.published == "" { // after publish, the manifest on disk is final
			s.m.Stages = append(s.m.Stages, manifest.StageTiming{Stage: st.name, Seconds: time.Since(s.stageStart).Seconds()})
		}
		end(note)
	}
	return &Result{Path: s.published, Manifest: s.m, Copies: s.copies}, nil
}

// runStage runs st under a progress line that the returned function ends.
// With OnErrorAsk, a failure ends the line and is put to Options.Ask,
// which may have the stage run again under a new line.
func (s *state) runStage(ctx context.Context, st stage, what string) (string, func(string), error) {
	end := s.opts.Progress.Start(st.name, what)
	for attempt := 1; ; attempt++ {
		note, err := st.run(ctx, s)
		if err == nil || s.opts.OnError != OnErrorAsk || ctx.Err() != nil {
			return note, end, err
		}
		end("failed")
		end = func(string) {}
		// the question goes to a terminal: sensitive values are hidden, as in the final error
		p := Paused{Stage: st.name, Err: s.redactor.Error(err), Attempt: attempt, CanRetry: st.retry != nil}
		if _, serr := os.Lstat(s.tree); serr == nil {
			p.Tree = s.tree
		}
		if _, serr := os.Stat(s.raw); serr == nil {
			p.Disk = s.raw
		}
		d := Cleanup
		if s.opts.Ask != nil {
			d = s.opts.Ask(ctx, p)
		}
		fmt.Fprintf(s.log, "=== stage %s failed (attempt %d): %s\n", st.name, attempt, decisionName(d))
		if d != Retry || !p.CanRetry || ctx.Err() != nil {
			s.keep = d == Keep
			return note, end, err
		}
		if err := st.retry(s); err != nil {
			return "", end, fmt.Errorf("preparing to run the stage again: %w", err)
		}
		fmt.Fprintf(s.log, "\n=== stage %s again: %s\n", st.name, what)
		end = s.opts.Progress.Start(st.name, what+" (again)")
	}
}

func roundSeconds(d time.Duration) float64 { return d.Round(100 * time.Millisecond).Seconds() }

func decisionName(d Decision) string {
	switch d {
	case Keep:
		return "keep"
	case Retry:
		return "retry"
	}
	return "cleanup"
}

// failed keeps a failed build's logs (and, with --on-error=keep, its tree or
// disk) under <images>/.failed/ before staging is removed, and says where in
// the error. A build that failed after publishing (in distribute) is in the
// catalog already and keeps nothing else.
func (s *state) failed(err error) error {
	if s.published != "" {
		return &PublishedError{Path: s.published, Err: err}
	}
	fmt.Fprintf(s.log, "\nbuild failed: %v\n", err)
	s.flushLog()
	if rerr := s.redactFiles(); rerr != nil {
		fmt.Fprintf(s.log, "hiding sensitive values in the logs: %v\n", rerr)
	}
	dir := keepLogs(s.opts.ImagesDir, s.img.Name, s.img.Version, s.staging.Artifact, s.files.logs())
	if dir == "" {
		return err
	}
	var kept string
	if s.opts.OnError == OnErrorKeep || s.keep {
		kept = keepForDebugging(dir, s.tree, s.raw)
	}
	var tf *boottest.Failure
	if errors.As(err, &tf) {
		tf.LogsDir, tf.Kept = dir, kept
		return err
	}
	err = fmt.Errorf("%w\nlogs: %s", err, dir)
	if kept != "" {
		err = fmt.Errorf("%w\n%s", err, kept)
	}
	return err
}

// PublishedError is a build that failed after it was published: in the
// distribute stage. The build is in the catalog.
type PublishedError struct {
	Path string // the published build
	Err  error
}

func (e *PublishedError) Error() string { return fmt.Sprintf("published %s, but %v", e.Path, e.Err) }
func (e *PublishedError) Unwrap() error { return e.Err }

// artifactFiles are the names of the files a build writes into its
// artifact directory besides the disks: the writer and the failure path
// (keepLogs) both use this one list.
type artifactFiles struct {
	buildLog string
	consoles map[platform.Boot]string // one console log per boot
	boots    []platform.Boot          // the boots of the test stage, in order
	junit    string
}

func newArtifactFiles(img recipes.Image) artifactFiles {
	f := artifactFiles{buildLog: "build.log", junit: "tests.xml", consoles: map[platform.Boot]string{}}
	f.boots = platform.Firmware(img.Boot.Firmware).Boots()
	for _, b := range f.boots {
		f.consoles[b] = boottest.ConsoleLog(b, len(f.boots))
	}
	return f
}

// logs lists the files a failed build keeps.
func (f artifactFiles) logs() []string {
	out := []string{f.buildLog}
	for _, b := range f.boots {
		out = append(out, f.consoles[b])
	}
	return append(out, f.junit)
}

// keepLogs copies a failed build's logs out of staging (which is about to be
// removed) into <images>/.failed/, which is not part of the catalog.
func keepLogs(imagesDir, name, version, from string, files []string) string {
	dir := filepath.Join(imagesDir, ".failed", fmt.Sprintf("%s-%s-%s", name, version, time.Now().UTC().Format("20060102T150405Z")))
	kept := false
	for _, f := range files {
		data, err := os.ReadFile(filepath.Join(from, f))
		if err != nil {
			continue
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return ""
		}
		if os.WriteFile(filepath.Join(dir, f), data, 0o644) == nil {
			kept = true
		}
	}
	if !kept {
		return ""
	}
	return dir
}

// BasePackages are installed into every Debian base on top of its variant.
// zstd is there for initramfs-tools, whose configuration asks for zstd and
// which falls back to gzip (slower to unpack at every boot) without it.
func BasePackages() []string {
	return []string{"linux-image-cloud-amd64", "systemd-sysv", "udev", "dbus", "initramfs-tools", "zstd", "e2fsprogs", "cloud-guest-utils"}
}
