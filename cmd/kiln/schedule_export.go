package main

import (
	"fmt"
	"io"
	"path"
	"path/filepath"
	"strings"

	"github.com/kiln-build/kiln/components"
	"github.com/kiln-build/kiln/kube"
	"github.com/kiln-build/kiln/recipes"
)

// exportOptions are kiln schedule --export's flags.
type exportOptions struct {
	format, image, recipesDir, context, secret string
}

// exportPipelines prints the pipelines as objects of another scheduler:
// for --export kubernetes, one batch/v1 CronJob per pipeline (package
// kube). Each recipe is loaded with its pipeline's variables, for its
// image name and version.
func exportPipelines(p *recipes.Pipelines, o exportOptions, stdout, stderr io.Writer) int {
	if o.format != "kubernetes" {
		fmt.Fprintf(stderr, "kiln schedule: --export %q: the one format is kubernetes\n", o.format)
		return exitUsage
	}
	context := o.context
	if context == "" {
		context = filepath.Dir(p.Path)
	}
	dir, err := filepath.Abs(context)
	if err != nil {
		fmt.Fprintf(stderr, "kiln schedule: %v\n", err)
		return exitFailed
	}
	inImage := func(file string) (string, error) {
		rel, err := filepath.Rel(dir, file)
		if err != nil || !filepath.IsLocal(rel) {
			return "", fmt.Errorf("%s is outside %s, the directory the builder image holds at %s (--context, default the pipelines file's directory)", file, dir, o.recipesDir)
		}
		return path.Join(o.recipesDir, filepath.ToSlash(rel)), nil
	}
	var jobs []kube.Pipeline
	for _, pl := range p.Pipelines {
		at := fmt.Sprintf("%s:%d:%d: pipeline %q", pl.Range.Filename, pl.Range.Line, pl.Range.Column, pl.Name)
		if pl.Registry == "" {
			fmt.Fprintf(stderr, "%s: has no registry; a CronJob's pod keeps nothing, so its builds go to a registry: add registry = \"oci://REGISTRY/REPOSITORY\"\n", at)
			return exitUsage
		}
		lo := pl.LoadOptions(nil)
		lo.Library = components.Builtin()
		r, files, diags := recipes.Load(pl.Recipe, lo)
		if diags.HasErrors() {
			recipes.WriteDiagnostics(stderr, files, diags, isTerminal(stderr))
			fmt.Fprintf(stderr, "%s: its recipe has errors\n", at)
			return exitUsage
		}
		j := kube.Pipeline{Name: pl.Name, Schedule: pl.Schedule.String(), TimeZone: pl.TimeZone, Vars: lo.Vars,
			IfChanged: pl.When == recipes.WhenInputsChanged, Image: r.Image.Name, Version: r.Image.Version,
			Registry: pl.Registry, PlainHTTP: pl.PlainHTTP, ContainerDisk: pl.ContainerDisk, KVM: pl.KVM}
		if j.Recipe, err = inImage(pl.Recipe); err != nil {
			fmt.Fprintf(stderr, "%s: recipe %v\n", at, err)
			return exitUsage
		}
		for _, f := range pl.VarFiles {
			vf, err := inImage(f)
			if err != nil {
				fmt.Fprintf(stderr, "%s: var file %v\n", at, err)
				return exitUsage
			}
			j.VarFiles = append(j.VarFiles, vf)
		}
		jobs = append(jobs, j)
	}
	data, err := kube.CronJobs(jobs, kube.Options{BuilderImage: o.image, RegistrySecret: o.secret})
	if err != nil {
		fmt.Fprintf(stderr, "kiln schedule: %s: %v\n", p.Path, err)
		return exitUsage
	}
	if _, err := stdout.Write(data); err != nil {
		return exitFailed
	}
	return exitOK
}

// defaultBuilderImage is the builder image the export names without --image.
func defaultBuilderImage() string {
	return "kiln-builder:" + strings.NewReplacer("+", "-").Replace(Version)
}
