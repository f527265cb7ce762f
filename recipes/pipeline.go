package recipes

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"

	"github.com/kiln-build/kiln/internal/cron"
)

// A pipelines file lists the recipes `kiln schedule` builds, and when:
//
//	pipeline "nightly-web" {
//	  recipe       = "web.hcl"        # relative to the pipelines file
//	  schedule     = "0 3 * * *"      # cron, see internal/cron
//	  when         = "inputs-changed" # or "always"
//	  time_zone    = "Europe/Berlin"  # IANA name; default: the host's zone
//	  max_failures = 3                # consecutive failures that disable it; 0: never
//	  variables    = { suite = "trixie" }
//	  var_files    = ["prod.vars.hcl"]
//	  registry     = "oci://registry.example:5000/images/web" # push each build there
//	  kvm          = true             # on Kubernetes: request /dev/kvm (kiln schedule --export)
//	}

// Pipeline "when" values.
const (
	WhenInputsChanged = "inputs-changed" // build only when the inputs digest changed (kiln build --if-changed)
	WhenAlways        = "always"         // build at every tick
)

// DefaultMaxFailures is a pipeline's max_failures when it sets none.
const DefaultMaxFailures = 3

// Pipelines is a parsed pipelines file.
type Pipelines struct {
	Path      string
	Pipelines []Pipeline // in file order
}

// Pipeline is one pipeline block.
type Pipeline struct {
	Name     string
	Recipe   string // absolute path
	Schedule *cron.Schedule
	When     string
	// TimeZone is the time_zone argument, "" for the host's zone; Location
	// is it loaded (time.Local when "").
	TimeZone    string
	Location    *time.Location
	MaxFailures int
	Variables   map[string]string // given to the recipe as -var name=value
	VarFiles    []string          // absolute paths, given as -var-file
	// Lifecycle, when set, replaces the recipe's lifecycle rule for the
	// builds this pipeline makes, and is applied after each of them.
	Lifecycle *Lifecycle
	// Registry, when set, is the oci://REGISTRY/REPOSITORY each build is
	// pushed to (with its containerDisk image when ContainerDisk is set);
	// PlainHTTP allows plain HTTP to a registry that is not on loopback.
	Registry      string
	PlainHTTP     bool
	ContainerDisk bool
	// KVM asks for /dev/kvm where the pipeline runs as a Kubernetes
	// CronJob (the KVM device plugin's resource); without it the job
	// boots its tests under TCG.
	KVM   bool
	Range Range
}

// LoadOptions are the options to load p's recipe with; env is the
// process's environment, for KILN_VAR_ variables.
func (p *Pipeline) LoadOptions(env []string) LoadOptions {
	var names []string
	for k := range p.Variables {
		names = append(names, k)
	}
	sort.Strings(names)
	o := LoadOptions{VarFiles: p.VarFiles, Env: env}
	for _, k := range names {
		o.Vars = append(o.Vars, k+"="+p.Variables[k])
	}
	return o
}

var pipelinesSchema = &hcl.BodySchema{
	Blocks: []hcl.BlockHeaderSchema{{Type: "pipeline", LabelNames: []string{"name"}}},
}

var pipelineSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "recipe"}, {Name: "schedule"}, {Name: "when"}, {Name: "time_zone"}, {Name: "max_failures"},
		{Name: "variables"}, {Name: "var_files"}, {Name: "registry"}, {Name: "plain_http"}, {Name: "containerdisk"}, {Name: "kvm"},
	},
	Blocks: []hcl.BlockHeaderSchema{{Type: "lifecycle"}},
}

var (
	pipelineRecipeArg   = arg{"recipe", `"web.hcl"`, true}
	pipelineScheduleArg = arg{"schedule", `"0 3 * * *"`, true}
	pipelineWhenArg     = arg{"when", `"inputs-changed"`, false}
	pipelineTZArg       = arg{"time_zone", `"Europe/Berlin"`, false}
	pipelineMaxFailArg  = arg{"max_failures", `3`, false}
	pipelineVarsArg     = arg{"variables", `{ suite = "trixie" }`, false}
	pipelineVarFilesArg = arg{"var_files", `["prod.vars.hcl"]`, false}
	pipelineRegistryArg = arg{"registry", `"oci://registry.example:5000/images/web"`, false}
	pipelinePlainArg    = arg{"plain_http", `true`, false}
	pipelineCDArg       = arg{"containerdisk", `true`, false}
	pipelineKVMArg      = arg{"kvm", `true`, false}
	pipelineNameRE      = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)
)

// LoadPipelines reads and parses the pipelines file at path.
func LoadPipelines(path string) (*Pipelines, *Files, hcl.Diagnostics) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, newFiles(path), hcl.Diagnostics{errorDiag(fileStart(path), "Cannot read pipelines file",
			fmt.Sprintf("%v. Check the pipelines file's path.", err))}
	}
	return ParsePipelines(path, src)
}

// ParsePipelines parses the pipelines file src, read from filename. Recipe
// and var_files paths resolve against filepath.Dir(filename) and must exist;
// the recipes themselves are read at each run, not here. It reports every
// problem at once, and returns nil Pipelines when there is an error.
func ParsePipelines(filename string, src []byte) (p *Pipelines, files *Files, diags hcl.Diagnostics) {
	files = newFiles(filename)
	defer func() {
		if r := recover(); r != nil {
			p = nil
			diags = append(diags, errorDiag(fileStart(filename), internalErrorSummary,
				fmt.Sprintf("Kiln failed while reading this pipelines file (%v). This is a bug in Kiln: please report it, with the file.", r)))
		}
	}()
	files.add(filename, src)
	dir, err := filepath.Abs(filepath.Dir(filename))
	if err != nil {
		dir = filepath.Dir(filename)
	}
	f, syntaxDiags := parseConfig(src, filename)
	if syntaxDiags.HasErrors() || f == nil || f.Body == nil {
		return nil, files, syntaxDiags
	}
	if body, ok := f.Body.(*hclsyntax.Body); ok {
		if nd := checkNumbers(body); nd.HasErrors() {
			return nil, files, nd
		}
	}
	content, diags := f.Body.Content(pipelinesSchema)
	p = &Pipelines{Path: filename}
	d := &decoder{ctx: &hcl.EvalContext{}, dir: dir}
	seen := map[string]hcl.Range{}
	for _, b := range content.Blocks {
		pl, pd := d.decodePipeline(b)
		diags = append(diags, pd...)
		if first, dup := seen[pl.Name]; dup {
			diags = append(diags, errorDiag(b.LabelRanges[0], "Duplicate pipeline",
				fmt.Sprintf("A pipeline %q is already declared at %s. Give each pipeline a name of its own.", pl.Name, at(first))))
		} else {
			seen[pl.Name] = b.LabelRanges[0]
		}
		p.Pipelines = append(p.Pipelines, *pl)
	}
	if len(content.Blocks) == 0 && !diags.HasErrors() {
		diags = append(diags, errorDiag(fileStart(filename), "No pipelines",
			"A pipelines file lists at least one pipeline, such as\n  pipeline \"nightly-web\" {\n    recipe   = \"web.hcl\"\n    schedule = \"0 3 * * *\"\n  }"))
	}
	sortDiagnostics(diags, filename)
	if diags.HasErrors() {
		return nil, files, diags
	}
	return p, files, diags
}

func (d *decoder) decodePipeline(b *hcl.Block) (*Pipeline, hcl.Diagnostics) {
	p := &Pipeline{Name: b.Labels[0], When: WhenInputsChanged, MaxFailures: DefaultMaxFailures, Location: time.Local,
		Variables: map[string]string{}, Range: toRange(b.DefRange)}
	var diags hcl.Diagnostics
	if !pipelineNameRE.MatchString(p.Name) {
		diags = append(diags, errorDiag(b.LabelRanges[0], "Invalid pipeline name",
			fmt.Sprintf("%q is not a pipeline name: use letters, digits, '.', '_' and '-', starting with a letter or digit, such as \"nightly-web\".", p.Name)))
	}
	content, cd := b.Body.Content(pipelineSchema)
	diags = append(diags, cd...)
	src := newDecoded("pipeline", b.DefRange, content.Attributes)

	var recipe, schedule string
	d.getStr(src, pipelineRecipeArg, &recipe, &diags)
	if a, ok := src.valid("recipe"); ok {
		p.Recipe = d.path(recipe)
		if fi, err := os.Stat(p.Recipe); err != nil || fi.IsDir() {
			diags = append(diags, errorDiag(a.Expr.Range(), "Recipe not found",
				fmt.Sprintf("There is no recipe file %s. Recipe paths are relative to the pipelines file's directory (%s).", p.Recipe, d.dir)))
		}
	}
	d.getStr(src, pipelineScheduleArg, &schedule, &diags)
	if a, ok := src.valid("schedule"); ok {
		s, err := cron.Parse(schedule)
		if err != nil {
			diags = append(diags, errorDiag(a.Expr.Range(), "Invalid schedule",
				fmt.Sprintf("%s. Write a 5-field cron expression (minute hour day-of-month month day-of-week) such as \"0 3 * * *\" (03:00 every day), or @hourly, @daily, @weekly, @monthly, @yearly or @every DURATION.", capitalize(err.Error()))))
		}
		p.Schedule = s
	}
	d.getStr(src, pipelineWhenArg, &p.When, &diags)
	if a, ok := src.valid("when"); ok && p.When != WhenInputsChanged && p.When != WhenAlways {
		diags = append(diags, errorDiag(a.Expr.Range(), "Invalid when",
			fmt.Sprintf("%q is not a choice: use %q (build only when the inputs changed; the default) or %q (build at every scheduled time).", p.When, WhenInputsChanged, WhenAlways)))
	}
	d.getStr(src, pipelineTZArg, &p.TimeZone, &diags)
	if a, ok := src.valid("time_zone"); ok {
		loc, err := loadLocation(p.TimeZone)
		if err != nil {
			diags = append(diags, errorDiag(a.Expr.Range(), "Unknown time zone",
				fmt.Sprintf("%q is not a time zone this host knows (%v). Use an IANA name such as \"Europe/Berlin\" or \"UTC\" (install the tzdata package if none work), or leave time_zone out for the host's zone.", p.TimeZone, err)))
		} else {
			p.Location = loc
		}
	}
	d.getInt(src, pipelineMaxFailArg, &p.MaxFailures, &diags)
	if a, ok := src.valid("max_failures"); ok && p.MaxFailures < 0 {
		diags = append(diags, errorDiag(a.Expr.Range(), "Invalid max_failures",
			fmt.Sprintf("max_failures is %d; give the number of consecutive failed runs that disable the pipeline, such as 3, or 0 never to disable it.", p.MaxFailures)))
	}
	d.getStrMap(src, pipelineVarsArg, &p.Variables, &diags)
	var files []string
	var ranges []hcl.Range
	d.getStrList(src, pipelineVarFilesArg, &files, &ranges, &diags)
	for i, f := range files {
		path := d.path(f)
		if fi, err := os.Stat(path); err != nil || fi.IsDir() {
			diags = append(diags, errorDiag(ranges[i], "Variables file not found",
				fmt.Sprintf("There is no file %s. var_files paths are relative to the pipelines file's directory (%s).", path, d.dir)))
		}
		p.VarFiles = append(p.VarFiles, path)
	}
	d.getStr(src, pipelineRegistryArg, &p.Registry, &diags)
	if a, ok := src.valid("registry"); ok && !ociRepoRE.MatchString(p.Registry) {
		diags = append(diags, errorDiag(a.Expr.Range(), "Invalid registry",
			fmt.Sprintf("%q is not a registry repository: write oci://REGISTRY/REPOSITORY, such as %s, without a tag (a build is tagged VERSION-BUILD and VERSION).", p.Registry, pipelineRegistryArg.example)))
	}
	d.getBool(src, pipelinePlainArg, &p.PlainHTTP, &diags)
	d.getBool(src, pipelineCDArg, &p.ContainerDisk, &diags)
	for _, name := range []string{"plain_http", "containerdisk"} {
		if a, ok := src.valid(name); ok && p.Registry == "" {
			diags = append(diags, errorDiag(a.Expr.Range(), "No registry",
				fmt.Sprintf("%s is about pushing to the pipeline's registry; set registry = %s, or remove %s.", name, pipelineRegistryArg.example, name)))
		}
	}
	d.getBool(src, pipelineKVMArg, &p.KVM, &diags)
	for _, lb := range content.Blocks {
		lc, ld := d.decodeLifecycleBlock(lb)
		diags = append(diags, ld...)
		if p.Lifecycle != nil {
			diags = append(diags, errorDiag(lb.DefRange, "Duplicate lifecycle block",
				fmt.Sprintf("A pipeline has at most one lifecycle block, and there is one at %s already. Merge the two.", p.Lifecycle.Range)))
			continue
		}
		p.Lifecycle = &lc.Lifecycle
	}
	return p, diags
}

// path resolves a path written in the file against its directory.
func (d *decoder) path(p string) string {
	if filepath.IsAbs(p) {
		return filepath.Clean(p)
	}
	return filepath.Join(d.dir, p)
}

// loadLocation is time.LoadLocation without its quirks: "" and "Local" are
// not accepted here (leave time_zone out for the host's zone), and neither
// are paths.
func loadLocation(name string) (*time.Location, error) {
	if name == "" || name == "Local" || strings.HasPrefix(name, "/") || strings.Contains(name, "..") || strings.ContainsRune(name, 0) {
		return nil, fmt.Errorf("not an IANA time zone name")
	}
	return time.LoadLocation(name)
}
