// Package builder turns a parsed recipe into a tested, published image.
//
// Build reads top to bottom as the pipeline it runs: base, build steps,
// configure, generalise, bootloader, disk, test, publish. Each stage takes
// typed inputs and returns typed outputs; state lives in local variables, not
// in a bag. Everything is assembled in a staging directory that is renamed
// into the catalog only when every stage has passed, so a failed or killed
// build publishes nothing.
//
// It does not parse recipes (package recipes) or talk to the user (the CLI
// passes a progress.Reporter and a log writer).
package builder

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/kiln-build/kiln/platform"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/kiln-build/kiln/base"
	"github.com/kiln-build/kiln/bootloader"
	"github.com/kiln-build/kiln/catalog"
	"github.com/kiln-build/kiln/disk"
	"github.com/kiln-build/kiln/internal/fsroot"
	"github.com/kiln-build/kiln/internal/progress"
	"github.com/kiln-build/kiln/internal/sparse"
	"github.com/kiln-build/kiln/recipes"
)

// Options are the knobs of one build that do not come from the recipe.
type Options struct {
	ImagesDir       string // the catalog root
	CacheDir        string // base cache
	KilnVersion     string
	RefreshBase     bool  // bootstrap even if a cached base exists
	SourceDateEpoch int64 // timestamps for reproducible filesystems; 0 = now
	Progress        progress.Reporter
	Logger          *slog.Logger
	// LogCopy, when set, receives a copy of the build log as it is written.
	LogCopy io.Writer
	// OnError is OnErrorCleanup ("" means it) or OnErrorKeep.
	OnError string
}

// Result is a published build.
type Result struct {
	Path     string // the published directory
	Manifest *Manifest
	Copies   []string // the build's copies in the recipe's distribute targets
}

// TestFailure is returned when the image was built but failed its tests or health checks.
type TestFailure struct {
	Failed  []TestResult
	Health  []string // failed base checks
	LogsDir string
	Kept    string // with --on-error=keep: what was kept and how to get in
}

func (e *TestFailure) Error() string {
	var parts []string
	for _, t := range e.Failed {
		parts = append(parts, fmt.Sprintf("test %q failed (exit code %d)", t.Name, t.ExitCode))
	}
	parts = append(parts, e.Health...)
	msg := strings.Join(parts, "; ")
	if e.LogsDir != "" {
		msg += "\nlogs: " + e.LogsDir
	}
	if e.Kept != "" {
		msg += "\n" + e.Kept
	}
	return msg
}

// Build runs the whole pipeline for r.
func Build(ctx context.Context, r *recipes.Recipe, o Options) (res *Result, err error) {
	if o.Progress == nil {
		o.Progress = progress.Quiet{}
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	img := r.Image
	m := &Manifest{
		SchemaVersion: ManifestSchemaVersion,
		Name:          img.Name,
		Version:       img.Version,
		KilnVersion:   o.KilnVersion,
		Recipe:        ManifestRecipe{Path: r.Path, SHA256: r.SHA256, Variables: r.Variables},
		Boot:          ManifestBoot{Firmware: img.Boot.Firmware, PartitionTable: img.Disk.Table, Bootloader: "grub"},
		Tests:         []TestResult{},
		BuildSteps:    []StepRecord{},
		Catalog:       CatalogSpec(img),
		Components:    manifestComponents(img.Components),
	}

	staging, err := catalog.NewStaging(o.ImagesDir)
	if err != nil {
		return nil, fmt.Errorf("creating the staging directory: %w", err)
	}
	defer staging.Discard()
	logFile, err := os.Create(filepath.Join(staging.Artifact, "build.log"))
	if err != nil {
		return nil, err
	}
	defer logFile.Close()
	var log io.Writer = logFile
	if o.LogCopy != nil {
		log = io.MultiWriter(logFile, o.LogCopy)
	}
	tree := filepath.Join(staging.Work, "tree")
	rawPath := filepath.Join(staging.Artifact, img.Name+".raw")
	defer func() {
		if err != nil {
			if dir := keepLogs(o.ImagesDir, img.Name, img.Version, staging.Artifact); dir != "" {
				var tf *TestFailure
				if errors.As(err, &tf) {
					tf.LogsDir = dir
				} else {
					err = fmt.Errorf("%w\nlogs: %s", err, dir)
				}
				if o.OnError == OnErrorKeep {
					if kept := keepForDebugging(dir, tree, rawPath); kept != "" {
						if tf != nil {
							tf.Kept = kept
						} else {
							err = fmt.Errorf("%w\n%s", err, kept)
						}
					}
				}
			}
		}
	}()
	stage := func(name, what string) func(note string) {
		fmt.Fprintf(log, "\n=== stage %s: %s\n", name, what)
		end := o.Progress.Start(name, what)
		start := time.Now()
		return func(note string) {
			m.Stages = append(m.Stages, StageTiming{Stage: name, Seconds: time.Since(start).Seconds()})
			end(note)
		}
	}

	// 1. Base: a Debian tree with a kernel, systemd and the bootloader's
	// packages, or the tree of a parent image or disk file (builder/parent.go).
	done := stage("base", baseDescription(img.Base))
	if img.Base.Type == "image" || img.Base.Type == "file" {
		if m.Parent, err = importBase(ctx, img.Base, o.ImagesDir, tree, staging.Work, log); err != nil {
			return nil, fmt.Errorf("base: %w", err)
		}
		m.Base = ManifestBase{Type: img.Base.Type, Components: []string{}}
		if m.Inputs, err = RecipeInputs(r, o.KilnVersion, "", ""); err != nil {
			return nil, err
		}
		m.Inputs.Base.Digest = m.Parent.digest()
		done("extracted")
	} else {
		deb := base.Debian{
			Suite: img.Base.Suite, Mirror: img.Base.Mirror, Variant: img.Base.Variant, Arch: img.Base.Arch,
			Components: img.Base.Components,
			Packages:   append(append(BasePackages(), bootloader.Packages()...), img.Base.Packages...),
		}
		b, err := base.Prepare(ctx, deb, tree, base.Options{CacheDir: o.CacheDir, Refresh: o.RefreshBase, Log: log, Logger: o.Logger})
		if err != nil {
			return nil, fmt.Errorf("base: %w", err)
		}
		m.Base = ManifestBase{Type: img.Base.Type, Suite: img.Base.Suite, Mirror: b.Mirror, Variant: img.Base.Variant, Arch: img.Base.Arch,
			Components: img.Base.Components, ReleaseSHA256: b.ReleaseSHA256, CacheKey: b.CacheKey, CacheHit: b.CacheHit}
		if m.Inputs, err = RecipeInputs(r, o.KilnVersion, b.Mirror, b.ReleaseSHA256); err != nil {
			return nil, err
		}
		done(map[bool]string{true: "cached", false: "bootstrapped"}[b.CacheHit])
	}
	m.InputsDigest = m.Inputs.Digest()

	// 2. Build steps, then validate steps, in the tree. The image's name is
	// its hostname unless a step sets another.
	if err := fsroot.WriteFile(tree, "/etc/hostname", []byte(img.Name+"\n"), 0o644); err != nil {
		return nil, err
	}
	if len(img.Build)+len(img.Validate) > 0 {
		done = stage("build", fmt.Sprintf("%d build step(s), %d validate step(s)", len(img.Build), len(img.Validate)))
		steps, err := buildSteps(ctx, append(append([]recipes.Step{}, img.Build...), img.Validate...))
		if err != nil {
			return nil, err
		}
		records, err := runSteps(ctx, tree, steps, log)
		m.BuildSteps = append(m.BuildSteps, records...)
		if err != nil {
			return nil, err
		}
		done("")
	}

	if m.Parent != nil {
		if err := checkImportedTree(tree, img); err != nil {
			return nil, err
		}
	}

	// 3. Configure: plan the disk, then write what depends on it into the tree.
	done = stage("configure", "layout, fstab and bootloader configuration")
	fw := platform.Firmware(img.Boot.Firmware)
	layout, err := planDisk(img, tree)
	if err != nil {
		return nil, fmt.Errorf("disk layout: %w", err)
	}
	bootCfg, err := configureTree(tree, layout, img)
	if err != nil {
		return nil, err
	}
	if m.Packages, err = installedPackages(tree); err != nil {
		return nil, err
	}
	if m.Kernel, err = kernelVersion(tree); err != nil {
		return nil, err
	}
	done("")

	// 4. Generalise: nothing machine-specific or secret ships.
	done = stage("generalise", "machine-id, SSH host keys, caches, logs")
	if err := generalise(tree, img.Name); err != nil {
		return nil, fmt.Errorf("generalise: %w", err)
	}
	if o.SourceDateEpoch > 0 {
		if err := disk.SetTreeTimes(tree, o.SourceDateEpoch); err != nil {
			return nil, err
		}
	}
	done("")

	// 5. Bootloader: the target's own grub-mkimage, for each firmware.
	done = stage("bootloader", "GRUB for "+img.Boot.Firmware)
	var esp []disk.File
	if fw.HasUEFI() {
		efi, err := bootloader.EFIImage(ctx, tree, bootCfg, log)
		if err != nil {
			return nil, err
		}
		esp = append(esp, disk.File{Path: "EFI/BOOT/BOOTX64.EFI", Data: efi})
	}
	var coreImg, bootImg []byte
	if fw.HasBIOS() {
		if coreImg, err = bootloader.CoreImage(ctx, tree, bootCfg, log); err != nil {
			return nil, err
		}
		if bootImg, err = bootloader.BootImage(tree); err != nil {
			return nil, err
		}
	}
	done("")

	// 6. Disk: partition table, filesystems and boot code; no loop devices, no mounts.
	done = stage("disk", fmt.Sprintf("%s raw image, %d MiB", img.Disk.Table, layout.Size/disk.MiB))
	mounts, err := disk.SplitTree(tree, layout, filepath.Join(staging.Work, "mounts"))
	if err != nil {
		return nil, fmt.Errorf("disk: %w", err)
	}
	if err := disk.Write(ctx, rawPath, layout, disk.Content{Tree: tree, Mounts: mounts, SourceDate: o.SourceDateEpoch, Log: log, ESP: esp}); err != nil {
		return nil, fmt.Errorf("disk: %w", err)
	}
	if fw.HasBIOS() {
		lba, room := biosCoreLocation(layout)
		if err := bootloader.EmbedBIOSFile(rawPath, bootImg, coreImg, lba, room); err != nil {
			return nil, fmt.Errorf("bootloader: %w", err)
		}
	}
	if err := os.RemoveAll(tree); err != nil {
		return nil, err
	}
	if err := os.RemoveAll(filepath.Join(staging.Work, "mounts")); err != nil {
		return nil, err
	}
	rawSum, err := sparse.SHA256(rawPath)
	if err != nil {
		return nil, err
	}
	m.Disk = manifestDisk(layout)
	done("")

	// 7. Test: boot a throwaway copy under each firmware the image claims and
	// run the tests inside the guest.
	tests, err := guestSteps(ctx, img.Tests)
	if err != nil {
		return nil, err
	}
	firmwares := []string{img.Boot.Firmware}
	if fw == platform.Hybrid {
		firmwares = []string{"uefi", "bios"}
	}
	var failures []*TestFailure
	for _, f := range firmwares {
		done = stage("test", fmt.Sprintf("boot under %s and run %d test(s)", f, len(tests)))
		console := "serial.log"
		if len(firmwares) > 1 {
			console = "serial-" + f + ".log"
		}
		report, err := TestImage(ctx, TestRequest{
			Image: rawPath, RootOffset: layout.Root().Start, Firmware: f, Name: img.Name, Version: img.Version,
			Tests: tests, WorkDir: staging.Work, ConsoleLog: filepath.Join(staging.Artifact, console), Log: log,
			SkipHealth: img.SkipHealth,
		})
		if err != nil {
			return nil, fmt.Errorf("test: %w", err)
		}
		m.Tests = append(m.Tests, report.Results...)
		m.Health = append(m.Health, report.Health)
		if f := report.failure(); f != nil {
			failures = append(failures, f)
			done("failed")
		} else {
			done(fmt.Sprintf("%d passed", len(report.Results)))
		}
		if err := writeJUnit(filepath.Join(staging.Artifact, "tests.xml"), img.Name, m.Tests, m.Health); err != nil {
			return nil, err
		}
	}
	if after, err := sparse.SHA256(rawPath); err != nil || after != rawSum {
		return nil, fmt.Errorf("test: the image changed while it was tested (sha256 %s, then %s)", rawSum, after)
	}
	if len(failures) > 0 {
		return nil, mergeFailures(failures)
	}

	// 8. Outputs: every requested format, checked against its platform's
	// rules and read back; the raw image is compressed last.
	done = stage("outputs", strings.Join(img.Output.Formats, ", "))
	if m.Outputs, err = writeOutputs(ctx, outputRequest{Raw: rawPath, Dir: staging.Artifact, Name: img.Name,
		Firmware: img.Boot.Firmware, Output: img.Output, Log: log}); err != nil {
		return nil, fmt.Errorf("outputs: %w", err)
	}
	done("")

	// 9. Publish: number the build under a lock and rename it into the catalog.
	done = stage("publish", "catalog "+o.ImagesDir)
	build, path, err := staging.Publish(img.Name, img.Version, func(build int) error {
		m.Build = build
		m.Created = time.Now().UTC().Truncate(time.Second)
		m.Stages = append(m.Stages, StageTiming{Stage: "publish", Seconds: 0})
		data, err := json.MarshalIndent(m, "", "  ")
		if err != nil {
			return err
		}
		if err := catalog.WriteInitialState(staging.Artifact, m.Catalog, m.Created); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(staging.Artifact, "manifest.json"), append(data, '\n'), 0o644); err != nil {
			return err
		}
		pauseInPublish() // a test-only hook, off unless KILN_TEST_PAUSE_IN_PUBLISH is set
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("publish: %w", err)
	}
	done(fmt.Sprintf("%s/%s/%d", img.Name, img.Version, build))

	// 10. Distribute: copy the build to the recipe's other catalogs.
	res = &Result{Path: path, Manifest: m}
	if len(img.Distribute) > 0 {
		done = stage("distribute", fmt.Sprintf("%d other catalog(s)", len(img.Distribute)))
		if res.Copies, err = distribute(path, img.Distribute, log); err != nil {
			return nil, fmt.Errorf("published %s, but %w", path, err)
		}
		done("")
	}
	return res, nil
}

// BasePackages are installed into every Debian base on top of its variant.
func BasePackages() []string {
	return []string{"linux-image-cloud-amd64", "systemd-sysv", "udev", "dbus", "initramfs-tools", "e2fsprogs", "cloud-guest-utils"}
}

func manifestDisk(l *disk.Layout) ManifestDisk {
	d := ManifestDisk{Size: l.Size, GUID: l.DiskGUID}
	for _, p := range l.Partitions {
		d.Partitions = append(d.Partitions, ManifestPartition{Number: p.Number, Label: p.Label, TypeGUID: p.Type.GUID, GUID: p.GUID,
			Start: p.Start, Size: p.Size, Filesystem: p.FS, FSUUID: p.FSUUID, Mount: p.Mount})
	}
	return d
}

// keepLogs copies a failed build's logs out of staging (which is about to be
// removed) into <images>/.failed/, which is not part of the catalog.
func keepLogs(imagesDir, name, version, from string) string {
	dir := filepath.Join(imagesDir, ".failed", fmt.Sprintf("%s-%s-%s", name, version, time.Now().UTC().Format("20060102T150405Z")))
	kept := false
	for _, f := range []string{"build.log", "serial.log", "tests.xml"} {
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
