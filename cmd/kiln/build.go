package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/kiln-build/kiln/boottest"
	"github.com/kiln-build/kiln/builder"
	"github.com/kiln-build/kiln/components"
	"github.com/kiln-build/kiln/internal/progress"
	"github.com/kiln-build/kiln/internal/qemu"
	krun "github.com/kiln-build/kiln/internal/run"
	"github.com/kiln-build/kiln/recipes"
)

const buildUsage = `kiln build [flags] RECIPE

Builds the image a recipe describes: bootstraps (or reuses) the base, or
extracts the parent image or disk file it names, runs the build steps
(restoring from the layer cache the steps that did not change, see
kiln cache), writes the disk, boots it in QEMU to run the tests, and publishes
<images>/<name>/<version>/<build>/ with the disk, manifest.json, tests.xml,
serial.log, build.log, the SBOMs (sbom.spdx.json, sbom.cdx.json) and the
provenance (provenance.dsse.json; with --sign-key it is signed, and
manifest.json.sigstore.json signs the manifest). A failed or interrupted
build publishes nothing.

Before the disk is written, a secret lint fails the build when the tree
holds a private key, credentials or the value of a sensitive variable
(lint { allow = [...] } in the recipe accepts a path). Every timestamp comes
from SOURCE_DATE_EPOCH, else from the inputs (the Debian archive's Release
date): two builds of one recipe on one base write the same disk. See
docs/supply-chain.md.

With --if-changed, the build is skipped when its inputs digest (the recipe,
the files it references, the variables, the base archive's Release file and
the Kiln version; see docs/scheduling.md) equals the one recorded by the
newest published build of the same image name and version: kiln prints
"up to date" and exits 0.

Variables: -var name=value and -var-file FILE (repeatable), and KILN_VAR_<name>
in the environment. Precedence, lowest first: default, KILN_VAR_, -var-file, -var.`

const validateUsage = `kiln validate [flags] RECIPE

Parses and checks a recipe without building it, and reports every problem
with file:line:col. Exit code 0 when valid, 2 otherwise.`

type recipeFlags struct {
	vars, varFiles multiFlag
	json           *bool
}

// register adds the flags every command that reads a recipe takes.
func (rf *recipeFlags) register(fs *flag.FlagSet, jsonUsage string) {
	fs.Var(&rf.vars, "var", "set a variable: name=value (repeatable)")
	fs.Var(&rf.varFiles, "var-file", "read variables from an HCL file (repeatable)")
	rf.json = fs.Bool("json", false, jsonUsage)
}

func loadRecipe(path string, rf *recipeFlags, stderr io.Writer, jsonOut io.Writer) (*recipes.Recipe, int) {
	r, files, diags := recipes.Load(path, recipes.LoadOptions{Library: components.Builtin(), Vars: rf.vars, VarFiles: rf.varFiles, Env: os.Environ()})
	if *rf.json && diags.HasErrors() {
		writeJSON(jsonOut, map[string]any{"status": "invalid", "diagnostics": recipes.DiagnosticsJSON(diags)})
		return nil, exitUsage
	}
	if len(diags) > 0 {
		recipes.WriteDiagnostics(stderr, files, diags, useColor(stderr))
	}
	if diags.HasErrors() {
		return nil, exitUsage
	}
	return r, exitOK
}

func cmdValidate(_ context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("validate", validateUsage, stderr)
	var rf recipeFlags
	rf.register(fs, "print the result as JSON on stdout")
	recipe, code := oneArg(fs, args, stderr, "RECIPE")
	if code >= 0 {
		return code
	}
	r, code := loadRecipe(recipe, &rf, stderr, stdout)
	if code != exitOK {
		return code
	}
	if *rf.json {
		return writeJSON(stdout, map[string]any{"status": "valid", "name": r.Image.Name, "version": r.Image.Version})
	}
	fmt.Fprintf(stdout, "%s: valid (image %s %s)\n", r.Path, r.Image.Name, r.Image.Version)
	return exitOK
}

func cmdBuild(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("build", buildUsage, stderr)
	var rf recipeFlags
	rf.register(fs, "print the result as JSON on stdout (progress goes nowhere)")
	images := fs.String("images", defaultImagesDir(), "catalog directory the build is published to, and where base \"image\" parents are found (env KILN_IMAGES)")
	cache := fs.String("cache", defaultCacheDir(), "cache directory for bootstrapped bases and build-step layers (env KILN_CACHE; see kiln cache)")
	refresh := fs.Bool("refresh-base", false, "bootstrap the base again even if a cached one is current")
	refreshSteps := fs.Bool("refresh-steps", false, "run every build step even if its layer is cached, and store the layers again")
	verbose := fs.Bool("verbose", false, "copy the build log (every command and its output) to stderr")
	ifChanged := fs.Bool("if-changed", false, "skip the build, exit 0 and say \"up to date\" when the inputs equal the newest build's")
	onError := fs.String("on-error", string(builder.OnErrorCleanup), "after a failure: cleanup; keep the tree (failed build step) or the disk (failed test) in <images>/.failed/; or ask on the terminal (retry, shell, keep, abort)")
	signKey := fs.String("sign-key", "", "sign the provenance and manifest.json with this private key (PEM PKCS#8, kiln keygen; env "+signKeyEnv+": a path or the PEM text)")
	recipe, code := oneArg(fs, args, stderr, "RECIPE")
	if code >= 0 {
		return code
	}
	if oe := builder.OnError(*onError); oe != builder.OnErrorCleanup && oe != builder.OnErrorKeep && oe != builder.OnErrorAsk {
		fmt.Fprintf(stderr, "kiln build: --on-error %q: use cleanup, keep or ask\n", *onError)
		return exitUsage
	}
	r, code := loadRecipe(recipe, &rf, stderr, stdout)
	if code != exitOK {
		return code
	}
	if *ifChanged {
		if res := upToDate(ctx, r, *images, stderr); res != nil {
			return reportUpToDate(stdout, *rf.json, res)
		}
	}
	var extra []string
	if r.Image.Boot.TPM {
		extra = append(extra, qemu.SwtpmBinary, qemu.SwtpmSetupBinary)
	}
	if err := checkHost(extra...); err != nil {
		return fail(stdout, stderr, *rf.json, err, exitFailed)
	}
	opts, err := buildOptions(*images, *cache, stderr)
	if err != nil {
		return fail(stdout, stderr, *rf.json, err, exitUsage)
	}
	if *signKey != "" { // else buildOptions read KILN_SIGN_KEY
		if opts.SignKey, err = loadSignKey(*signKey); err != nil {
			return fail(stdout, stderr, *rf.json, err, exitUsage)
		}
	}
	opts.RefreshBase, opts.RefreshSteps = *refresh, *refreshSteps
	opts.OnError = builder.OnError(*onError)
	if opts.OnError == builder.OnErrorAsk {
		term, ok := stderr.(*os.File)
		if !ok || !isTerminal(os.Stdin) || !isTerminal(term) {
			fmt.Fprintln(stderr, "kiln build: --on-error=ask: no terminal to ask on; a failure is cleaned up as with --on-error=cleanup")
			opts.OnError = builder.OnErrorCleanup
		} else {
			opts.Ask = askOnTerminal(os.Stdin, term)
		}
	}
	if !*rf.json {
		opts.Progress = progress.New(stderr)
	}
	if *verbose {
		opts.LogCopy = stderr
	}
	res, err := builder.Build(ctx, r, opts)
	if err != nil {
		if ctx.Err() != nil {
			err = interruptedBuild(err)
		}
		return fail(stdout, stderr, *rf.json, err, exitFailed)
	}
	m := res.Manifest
	if *rf.json {
		return writeJSON(stdout, map[string]any{"status": "published", "path": res.Path, "name": m.Name, "version": m.Version,
			"build": m.Build, "outputs": m.Outputs, "tests": m.Tests, "inputs_digest": m.InputsDigest, "copies": res.Copies,
			"sboms": m.SBOMs, "provenance": m.Provenance, "source_date": m.SourceDate})
	}
	fmt.Fprintf(stdout, "published %s/%s/%d\n  path: %s\n", m.Name, m.Version, m.Build, res.Path)
	for _, o := range m.Outputs {
		fmt.Fprintf(stdout, "  %s: %s (sha256 %s)\n", o.Format, o.File, o.SHA256)
	}
	for _, b := range m.SBOMs {
		fmt.Fprintf(stdout, "  sbom: %s (%s, %d packages)\n", b.File, b.Format, b.Packages)
	}
	if p := m.Provenance; p.Signed {
		fmt.Fprintf(stdout, "  provenance: %s and %s, signed with key %s\n", p.File, p.Bundle, p.KeyID)
	} else {
		fmt.Fprintf(stdout, "  provenance: %s (unsigned: kiln build --sign-key signs it)\n", p.File)
	}
	fmt.Fprintf(stdout, "  source date: %s (%s)\n", m.SourceDate.Time.Format(time.RFC3339), m.SourceDate.Detail)
	for _, t := range m.Tests {
		fmt.Fprintf(stdout, "  test %-20s %s (%s, %.1fs)\n", t.Name, strings.ToUpper(string(t.Status)), t.Firmware, t.Seconds)
	}
	for _, h := range m.Health {
		fmt.Fprintf(stdout, "  health: multi-user reached under %s, guest ran %.0fs (%s)\n", h.Firmware, h.BootSeconds, testVM(h))
	}
	for _, c := range res.Copies {
		fmt.Fprintf(stdout, "  copy: %s (checksums verified)\n", c)
	}
	return exitOK
}

func fail(stdout, stderr io.Writer, asJSON bool, err error, code int) int {
	var tf *boottest.Failure
	if errors.As(err, &tf) {
		code = exitFailed
	}
	if asJSON {
		writeJSON(stdout, map[string]any{"status": "failed", "error": err.Error(), "exit_code": code})
		return code
	}
	fmt.Fprintf(stderr, "kiln: %v\n", err)
	return code
}

// interruptedBuild says what an interrupted build left: nothing, or (when
// the signal came while it copied the build to other catalogs) the
// published build.
func interruptedBuild(err error) error {
	var pe *builder.PublishedError
	if errors.As(err, &pe) {
		return fmt.Errorf("interrupted after publishing %s; its copies to other catalogs are not all made (kiln images copy makes them): %w", pe.Path, err)
	}
	return fmt.Errorf("interrupted; nothing was published: %w", err)
}

// checkHost reports every missing host tool at once: the build tools and
// the extra ones a recipe needs.
func checkHost(extra ...string) error {
	var problems []string
	if err := krun.Require(append(append([]string{}, krun.BuildTools...), extra...)...); err != nil {
		problems = append(problems, err.Error())
	}
	if os.Geteuid() != 0 {
		problems = append(problems, "kiln build must run as root: it bootstraps Debian and runs build steps in a chroot")
	}
	if len(problems) > 0 {
		return errors.New(strings.Join(problems, "\n"))
	}
	return nil
}

func recipeFormat() string { return recipes.FormatVersion }
