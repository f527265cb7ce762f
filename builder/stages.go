package builder

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/kiln-build/kiln/base"
	"github.com/kiln-build/kiln/bootloader"
	"github.com/kiln-build/kiln/boottest"
	"github.com/kiln-build/kiln/components"
	"github.com/kiln-build/kiln/disk"
	"github.com/kiln-build/kiln/internal/fsroot"
	"github.com/kiln-build/kiln/internal/sparse"
	"github.com/kiln-build/kiln/internal/testhook"
	"github.com/kiln-build/kiln/manifest"
	"github.com/kiln-build/kiln/platform"
	"github.com/kiln-build/kiln/recipes"
	"github.com/kiln-build/kiln/sbom"
)

// stages is the pipeline, top to bottom.
var stages = []stage{
	{name: "base", describe: func(s *state) string { return baseDescription(s.img.Base) }, run: stageBase,
		retry: func(s *state) error { return os.RemoveAll(s.tree) }},
	{name: "build", skip: func(s *state) bool { return len(s.img.Build)+len(s.img.Validate) == 0 },
		describe: func(s *state) string {
			return fmt.Sprintf("%d build step(s), %d validate step(s)", len(s.img.Build), len(s.img.Validate))
		}, run: stageBuild, retry: func(*state) error { return nil }},
	{name: "configure", describe: func(*state) string { return "layout, fstab and bootloader configuration" }, run: stageConfigure},
	{name: "generalise", describe: func(*state) string { return "machine-id, SSH host keys, caches, logs" }, run: stageGeneralise},
	// lint reads the tree again on a retry: after a secret was removed in a shell
	{name: "lint", describe: func(*state) string { return "no private keys, credentials or sensitive values in the tree" }, run: stageLint,
		retry: func(*state) error { return nil }},
	{name: "bootloader", describe: describeBootloader, run: stageBootloader},
	{name: "disk", describe: func(s *state) string {
		return fmt.Sprintf("%s raw image, %d MiB", s.m.Boot.PartitionTable, s.layout.Size/disk.MiB)
	}, run: stageDisk},
	{name: "test", describe: describeTest, run: stageTest, retry: func(*state) error { return nil }},
	{name: "outputs", describe: func(s *state) string { return strings.Join(s.img.Output.Formats, ", ") }, run: stageOutputs},
	{name: "sbom", describe: func(*state) string { return sbom.SPDXFile + ", " + sbom.CycloneDXFile }, run: stageSBOM},
	{name: "publish", describe: func(s *state) string { return "catalog " + s.opts.ImagesDir }, run: stagePublish},
	{name: "distribute", skip: func(s *state) bool { return len(s.img.Distribute) == 0 },
		describe: func(s *state) string { return fmt.Sprintf("%d other catalog(s) or registries", len(s.img.Distribute)) }, run: stageDistribute},
}

// stageBase makes the root tree: a Debian tree with a kernel, systemd and
// the bootloader's packages, or the tree of a parent image or disk file
// (parent.go). It records the inputs digest, which needs the base's
// identity.
func stageBase(ctx context.Context, s *state) (string, error) {
	img := s.img
	if img.Base.Type != recipes.BaseDebian {
		p, err := importBase(ctx, img.Base, s.opts.ImagesDir, s.tree, s.staging.Work, s.opts.KilnVersion, s.log)
		if err != nil {
			return "", err
		}
		s.m.Parent = p
		s.m.Base = manifest.Base{Type: string(img.Base.Type), Components: []string{}}
		if s.m.Inputs, err = RecipeInputs(s.recipe, s.opts.ImagesDir, s.opts.KilnVersion, "", ""); err != nil {
			return "", err
		}
		s.m.Inputs.Base.Digest = base.ParentDigest(p)
		s.m.InputsDigest = s.m.Inputs.Digest()
		s.baseID = s.m.Inputs.Base.Digest
		s.m.SourceDate, err = resolveSourceDate(s.opts.SourceDateEpoch, s.tree, nil, p)
		return "extracted", err
	}
	b, err := base.Prepare(ctx, debianBase(img), s.tree, base.Options{CacheDir: s.opts.CacheDir, Refresh: s.opts.RefreshBase, Log: s.log, Logger: s.opts.Logger})
	if err != nil {
		return "", err
	}
	s.m.Base = manifest.Base{Type: string(img.Base.Type), Suite: img.Base.Suite, Mirror: b.Mirror, Variant: img.Base.Variant, Arch: img.Base.Arch,
		Components: img.Base.Components, ReleaseSHA256: b.ReleaseSHA256, CacheKey: b.CacheKey, CacheHit: b.CacheHit}
	if s.m.Inputs, err = RecipeInputs(s.recipe, s.opts.ImagesDir, s.opts.KilnVersion, b.Mirror, b.ReleaseSHA256); err != nil {
		return "", err
	}
	s.m.InputsDigest = s.m.Inputs.Digest()
	s.releaseURL = b.ReleaseURL
	if s.m.SourceDate, err = resolveSourceDate(s.opts.SourceDateEpoch, s.tree, b, nil); err != nil {
		return "", err
	}
	s.baseID = fmt.Sprintf("debian %s release %s bootstrapped %s", b.CacheKey, b.ReleaseSHA256, b.Bootstrapped.UTC().Format(time.RFC3339Nano))
	if b.CacheHit {
		return "cached", nil
	}
	return "bootstrapped", nil
}

// debianBase is what the base stage bootstraps (or finds cached) for an
// image on a Debian base: the recipe's suite with Kiln's packages.
func debianBase(img recipes.Image) base.Debian {
	return base.Debian{
		Suite: img.Base.Suite, Mirror: img.Base.Mirror, Variant: img.Base.Variant, Arch: img.Base.Arch,
		Components: img.Base.Components,
		Packages:   debianPackages(img.Base.Packages, img.Boot.SecureBoot),
		Setup:      initramfsSetup(img.Base.InitramfsModules),
	}
}

// stageBuild runs the build steps, then the validate steps, in the tree.
// The image's name is its hostname unless a step sets another, so it is
// written first, with the boot defaults a step may undo (also when there
// are no steps: see stageConfigure). Build steps whose layers are cached
// are restored instead of run (layers.go); validate steps always run and
// are never cached. Run again after a failure (--on-error=ask), it resumes
// at the failed step, caching nothing more: the tree it resumes on (what
// the failed step left, and what the user changed in the shell) cannot be
// reproduced.
func stageBuild(ctx context.Context, s *state) (string, error) {
	if len(s.m.BuildSteps) == 0 {
		if err := writeHostname(s); err != nil {
			return "", err
		}
		if err := writeBootDefaults(s.tree, s.img); err != nil {
			return "", err
		}
	}
	steps, err := components.BuildSteps(ctx, append(append([]recipes.Step{}, s.img.Build...), s.img.Validate...))
	if err != nil {
		return "", err
	}
	for i := len(s.img.Build); i < len(steps); i++ {
		steps[i].NoCache = true
	}
	var cache *stepCache
	if !s.buildRan {
		keepSensitiveUncached(steps[:len(s.img.Build)], s.redactor, s.log)
		cache = s.stepCache()
	} else {
		fmt.Fprintf(s.log, "==> layer cache: the build resumes at step %d: no layer is restored or stored\n", len(s.m.BuildSteps)+1)
	}
	s.buildRan = true
	records, err := runSteps(ctx, s.tree, steps[len(s.m.BuildSteps):], s.log, cache)
	s.m.BuildSteps = append(s.m.BuildSteps, records...)
	return cachedNote(records), err
}

func writeHostname(s *state) error {
	return fsroot.WriteFile(s.tree, "/etc/hostname", []byte(s.img.Name+"\n"), 0o644)
}

// stageConfigure plans the disk, then writes what depends on it into the
// tree, and records what the tree holds.
func stageConfigure(ctx context.Context, s *state) (string, error) {
	if len(s.img.Build)+len(s.img.Validate) == 0 {
		if err := writeHostname(s); err != nil {
			return "", err
		}
		if err := writeBootDefaults(s.tree, s.img); err != nil {
			return "", err
		}
	}
	if s.m.Parent != nil {
		if err := checkImportedTree(s.tree, s.img); err != nil {
			return "", err
		}
	}
	var err error
	if s.layout, err = planDisk(s.img, s.tree); err != nil {
		return "", fmt.Errorf("disk layout: %w", err)
	}
	if s.bootCfg, err = configureTree(s.tree, s.layout, s.img); err != nil {
		return "", err
	}
	if !s.img.Boot.UpdateAtFirstBoot {
		if err := updateForFirstBoot(ctx, s.tree, s.log); err != nil {
			return "", err
		}
	}
	if err := treeInventory(s); err != nil {
		return "", err
	}
	s.m.Kernel, err = kernelVersion(s.tree)
	return "", err
}

// stageGeneralise removes everything machine-specific or secret.
func stageGeneralise(_ context.Context, s *state) (string, error) {
	if err := generalise(s.tree, s.img.Name); err != nil {
		return "", err
	}
	return "", disk.SetTreeTimes(s.tree, s.m.SourceDate.Epoch)
}

// stageBootloader builds GRUB with the target's own grub-mkimage, for each
// firmware the image boots under; under UEFI with Secure Boot, the signed
// chain instead (secureboot.go). It records the UEFI boot chain.
func stageBootloader(ctx context.Context, s *state) (string, error) {
	fw := s.m.Boot.Firmware
	if fw.HasUEFI() {
		files, err := uefiChain(ctx, s)
		if err != nil {
			return "", err
		}
		s.esp = append(s.esp, files...)
		if s.m.Boot.Chain, err = bootChain(s.esp, s.tree, s.m.Kernel); err != nil {
			return "", err
		}
	}
	if fw.HasBIOS() {
		var err error
		if s.coreImg, err = bootloader.CoreImage(ctx, s.tree, s.bootCfg, s.log); err != nil {
			return "", err
		}
		if s.bootImg, err = bootloader.BootImage(s.tree); err != nil {
			return "", err
		}
	}
	return "", nil
}

// stageDisk writes the partition table, the filesystems and the boot code
// into a sparse raw file: no loop devices, no mounts. The tree is gone
// afterwards.
func stageDisk(ctx context.Context, s *state) (string, error) {
	mountsDir := filepath.Join(s.staging.Work, "mounts")
	mounts, err := disk.SplitTree(s.tree, s.layout, mountsDir)
	if err != nil {
		return "", err
	}
	if err := disk.Write(ctx, s.raw, s.layout, disk.Content{Tree: s.tree, Mounts: mounts, SourceDate: s.m.SourceDate.Epoch, Log: s.log, ESP: s.esp}); err != nil {
		return "", err
	}
	if s.m.Boot.Firmware.HasBIOS() {
		lba, room := biosCoreLocation(s.layout)
		if err := bootloader.EmbedBIOSFile(s.raw, s.bootImg, s.coreImg, lba, room); err != nil {
			return "", fmt.Errorf("bootloader: %w", err)
		}
	}
	if err := os.RemoveAll(s.tree); err != nil {
		return "", err
	}
	if err := os.RemoveAll(mountsDir); err != nil {
		return "", err
	}
	if s.rawSum, err = sparse.SHA256(s.raw); err != nil {
		return "", err
	}
	s.m.Disk = manifestDisk(s.layout)
	return "", nil
}

func describeTest(s *state) string {
	names := make([]string, len(s.files.boots))
	for i, b := range s.files.boots {
		names[i] = string(b)
	}
	return fmt.Sprintf("boot under %s and run %d test(s)", strings.Join(names, " and "), len(s.img.Tests))
}

// stageTest boots a throwaway copy under each firmware the image claims
// and runs the tests inside the guest; boottest proves the image itself
// did not change. The outputs, which read only the image, are written
// meanwhile (stageOutputs waits for them).
func stageTest(ctx context.Context, s *state) (string, error) {
	if s.pending == nil {
		// the outputs get the cores the test VMs' vCPUs leave
		busy, err := boottest.BusyCores(ctx, len(s.files.boots), testDevices(s.img.Boot))
		if err != nil {
			return "", err
		}
		s.pending = startOutputs(ctx, outputRequest{Raw: s.raw, RawSum: s.rawSum, Dir: s.staging.Artifact, Name: s.img.Name,
			Firmware: string(s.m.Boot.Firmware), Output: s.img.Output, Log: s.log, Workers: max(1, runtime.NumCPU()-busy)})
	}
	s.m.Tests, s.m.Health = []manifest.TestResult{}, nil // a retried stage records its last run
	tests, err := components.GuestSteps(ctx, s.img.Tests)
	if err != nil {
		return "", err
	}
	consoles := map[platform.Boot]string{}
	for b, name := range s.files.consoles {
		consoles[b] = filepath.Join(s.staging.Artifact, name)
	}
	// An output that fails ends the boot: the build fails at the outputs
	// stage, with the output's error, without waiting for the tests.
	tctx, done := s.pending.watch(ctx)
	defer done()
	out, err := boottest.Run(tctx, boottest.Suite{
		Image: s.raw, ImageSHA256: s.rawSum, Name: s.img.Name, Version: s.img.Version, RootOffset: s.layout.Root().Start,
		Boots: s.files.boots, Consoles: consoles, Tests: tests, SkipHealth: s.img.SkipHealth, Devices: testDevices(s.img.Boot),
		WorkDir: s.staging.Work, Log: s.log,
		Booted: func(b platform.Boot, r *boottest.Report) error {
			s.m.Tests = append(s.m.Tests, r.Results...)
			s.m.Health = append(s.m.Health, r.Health)
			verdict := fmt.Sprintf("%d passed", len(r.Results))
			if r.Failure() != nil {
				verdict = "failed"
			}
			fmt.Fprintf(s.log, "=== boot under %s: %s\n", b, verdict)
			return boottest.WriteJUnit(filepath.Join(s.staging.Artifact, s.files.junit), s.img.Name, s.m.Tests, s.m.Health)
		},
	})
	if err != nil && ctx.Err() == nil && errors.Is(context.Cause(tctx), errOutputFailed) {
		return "stopped: an output failed", nil // stageOutputs reports the output's error
	}
	if err != nil {
		return "", err
	}
	if out.Failure != nil {
		return "", out.Failure
	}
	return fmt.Sprintf("%d passed", len(out.Results)), nil
}

// stageOutputs waits for the outputs the test stage started (the stage
// before it, always run): every requested format, checked against its
// platform's rules and read back, the raw image compressed. Then the raw
// image goes, unless it is published as it is.
func stageOutputs(_ context.Context, s *state) (string, error) {
	p := s.pending
	s.pending = nil
	var err error
	if s.m.Outputs, err = p.wait(s.log); err != nil {
		return "", err
	}
	return "", dropRaw(s.raw, s.m.Outputs)
}

// stopOutputs cancels outputs still being written in the background and
// waits for them to remove what they wrote: before a failed build keeps
// its disk or its staging directory goes.
func (s *state) stopOutputs() {
	if s.pending != nil {
		s.pending.stop()
		s.pending = nil
	}
}

// stagePublish numbers the build under the version's lock, writes the
// manifest (once, from the state) and the catalog state, and renames the
// staging directory into the catalog.
//
// A build interrupted (SIGINT, SIGTERM) before the rename publishes
// nothing: the context is checked last thing inside the window.
func stagePublish(ctx context.Context, s *state) (string, error) {
	build, path, err := s.staging.Publish(s.img.Name, s.img.Version, func(build int) error {
		s.m.Build = build
		s.m.Created = time.Now().UTC().Truncate(time.Second)
		s.m.Stages = append(s.m.Stages, manifest.StageTiming{Stage: "publish", Seconds: time.Since(s.stageStart).Seconds()})
		if err := catalogInitialState(s); err != nil {
			return err
		}
		if err := s.redactFiles(); err != nil {
			return err
		}
		if err := s.redactRecord(); err != nil {
			return err
		}
		if err := s.m.Write(s.staging.Artifact); err != nil {
			return err
		}
		if err := writeProvenance(s); err != nil {
			return err
		}
		testhook.At(testhook.PublishWindow)
		return ctx.Err()
	})
	if err != nil {
		return "", err
	}
	s.published = path
	return fmt.Sprintf("%s/%s/%d", s.img.Name, s.img.Version, build), nil
}

// stageDistribute copies the published build to the recipe's other catalogs.
func stageDistribute(ctx context.Context, s *state) (string, error) {
	var err error
	s.copies, err = distribute(ctx, s.published, s.img.Distribute, s.opts.KilnVersion, s.log)
	return "", err
}

func manifestDisk(l *disk.Layout) manifest.Disk {
	d := manifest.Disk{Size: l.Size, GUID: l.DiskGUID}
	for _, p := range l.Partitions {
		d.Partitions = append(d.Partitions, manifest.Partition{Number: p.Number, Label: p.Label, TypeGUID: p.Type.GUID, GUID: p.GUID,
			Start: p.Start, Size: p.Size, Filesystem: p.FS, FSUUID: p.FSUUID, Mount: p.Mount})
	}
	return d
}
