package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/kiln-build/kiln/builder"
	"github.com/kiln-build/kiln/disk"
	"github.com/kiln-build/kiln/internal/units"
	"github.com/kiln-build/kiln/recipes"
)

const inspectUsage = `kiln inspect [flags] RECIPE

Shows the recipe as kiln build would read it, without building: each
variable with its value and where the value came from (default,
KILN_VAR_NAME, an auto-loaded *.auto.kilnvars.* file, -var-file, -var), the
locals, the base, the boot mode, the disk layout with every partition's
offset, size and identifiers, the components with the versions their
constraints resolve to, the steps, the outputs, the catalog rules, and what
makes the build not reproducible. Sensitive values show as (sensitive).
Takes the same -var and -var-file flags as kiln build; an invalid recipe is
reported as kiln validate reports it (exit code 2).`

func cmdInspect(_ context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("inspect", inspectUsage, stderr)
	var rf recipeFlags
	rf.register(fs, "print the resolved recipe as JSON on stdout")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return flagError(err)
	}
	if len(pos) != 1 {
		fmt.Fprintln(stderr, "kiln inspect: expected exactly one RECIPE argument")
		fs.Usage()
		return exitUsage
	}
	r, code := loadRecipe(pos[0], &rf, stderr, stdout)
	if code != exitOK {
		return code
	}
	doc := inspectRecipe(r)
	if *rf.json {
		return writeJSON(stdout, doc)
	}
	doc.writeText(stdout)
	return exitOK
}

// inspection is what kiln inspect shows, as JSON.
type inspection struct {
	Status          string            `json:"status"` // "valid"
	Recipe          inspectedRecipe   `json:"recipe"`
	Variables       []inspectedValue  `json:"variables"`
	Locals          []inspectedValue  `json:"locals"`
	Image           inspectedImage    `json:"image"`
	Base            inspectedBase     `json:"base"`
	Boot            inspectedBoot     `json:"boot"`
	Disk            inspectedDisk     `json:"disk"`
	Components      []inspectedComp   `json:"components"`
	Steps           []inspectedStep   `json:"steps"`
	Output          inspectedOutput   `json:"output"`
	Catalog         inspectedCatalog  `json:"catalog"`
	Lifecycle       *inspectedLife    `json:"lifecycle"`
	Distribute      []inspectedDist   `json:"distribute"`
	NotReproducible []string          `json:"not_reproducible"`
	FilesRead       map[string]string `json:"files_read"` // path (relative to the recipe when inside its directory) -> sha256
}

type inspectedRecipe struct {
	Path            string   `json:"path"`
	SHA256          string   `json:"sha256"`
	RequiredVersion string   `json:"required_version"`
	VarFiles        []string `json:"auto_var_files"`
}

type inspectedValue struct {
	Name        string `json:"name"`
	Type        string `json:"type,omitempty"`
	Value       any    `json:"value"`
	Sensitive   bool   `json:"sensitive"`
	Source      string `json:"source,omitempty"`
	Description string `json:"description,omitempty"`
	At          string `json:"at"`
}

type inspectedImage struct {
	Name        string   `json:"name"`
	Version     string   `json:"version"`
	Description string   `json:"description"`
	SkipHealth  []string `json:"skip_health"`
}

type inspectedBase struct {
	Type              string   `json:"type"`
	Suite             string   `json:"suite,omitempty"`
	Mirror            string   `json:"mirror,omitempty"` // "" for the host's apt sources
	Variant           string   `json:"variant,omitempty"`
	Arch              string   `json:"arch,omitempty"`
	Components        []string `json:"components,omitempty"`
	Packages          []string `json:"packages,omitempty"`
	Name              string   `json:"name,omitempty"`
	Version           string   `json:"version,omitempty"`
	IncludeDeprecated bool     `json:"include_deprecated,omitempty"`
	Path              string   `json:"path,omitempty"`
	SHA256            string   `json:"sha256,omitempty"`
}

type inspectedBoot struct {
	Firmware      string   `json:"firmware"`
	KernelCmdline []string `json:"kernel_cmdline"`
}

type inspectedOutput struct {
	Formats         []string `json:"formats"`
	Compress        string   `json:"compress"`
	VMDKSubformat   string   `json:"vmdk_subformat"`
	VHDSubformat    string   `json:"vhd_subformat"`
	QCOW2Compressed bool     `json:"qcow2_compressed"`
	CPUs            int      `json:"cpus"`
	MemoryMiB       int      `json:"memory_mib"`
}

type inspectedCatalog struct {
	Visibility   string   `json:"visibility"`
	ShareWith    []string `json:"share_with"`
	Encrypted    bool     `json:"encrypted"`
	ProductCodes []string `json:"product_codes"`
}

type inspectedDist struct {
	Name   string `json:"name"`
	Images string `json:"images"`
}

type inspectedDisk struct {
	Size       uint64          `json:"size"` // 0 with auto
	Auto       bool            `json:"auto"`
	Headroom   int             `json:"headroom_percent,omitempty"`
	Table      string          `json:"table"`
	Grow       bool            `json:"grow"`
	GUID       string          `json:"guid,omitempty"`
	Default    bool            `json:"default_layout"` // no partition blocks: the boot mode's layout
	Partitions []inspectedPart `json:"partitions"`
	Problem    string          `json:"problem,omitempty"` // why the layout could not be planned
}

type inspectedPart struct {
	Number     int    `json:"number"`
	Label      string `json:"label"`
	Type       string `json:"type"`
	Filesystem string `json:"filesystem"`
	Mount      string `json:"mount,omitempty"`
	Options    string `json:"options,omitempty"` // mount options in /etc/fstab besides defaults
	Start      uint64 `json:"start,omitempty"`   // 0 when the disk is sized at build time
	Size       uint64 `json:"size"`              // 0: the rest of the disk, sized at build time
	GUID       string `json:"guid,omitempty"`
	FSUUID     string `json:"filesystem_uuid,omitempty"`
}

type inspectedComp struct {
	Name       string         `json:"name"`
	Constraint string         `json:"constraint"`
	Version    string         `json:"version"`
	Source     string         `json:"source"`
	Parameters map[string]any `json:"parameters"`
}

type inspectedStep struct {
	Phase     string `json:"phase"` // build, validate or test
	Name      string `json:"name"`
	Action    string `json:"action"`
	Component string `json:"component,omitempty"`
	Timeout   string `json:"timeout"`
	Retries   int    `json:"retries,omitempty"`
	At        string `json:"at"`
}

type inspectedLife struct {
	KeepLast       int    `json:"keep_last,omitempty"`
	DeprecateAfter string `json:"deprecate_after,omitempty"`
	DeleteAfter    string `json:"delete_after,omitempty"`
}

// inspectRecipe resolves what kiln inspect shows, with every sensitive
// value redacted.
func inspectRecipe(r *recipes.Recipe) *inspection {
	img := r.Image
	doc := &inspection{
		Status: "valid",
		Recipe: inspectedRecipe{Path: r.Path, SHA256: r.SHA256, RequiredVersion: r.RequiredVersion, VarFiles: recipes.AutoVarFiles(r.Path)},
		Image:  inspectedImage{Name: img.Name, Version: img.Version, Description: img.Description, SkipHealth: append([]string{}, img.SkipHealth...)},
		Base: inspectedBase{Type: string(img.Base.Type), Suite: img.Base.Suite, Mirror: img.Base.Mirror, Variant: img.Base.Variant, Arch: img.Base.Arch,
			Components: img.Base.Components, Packages: img.Base.Packages, Name: img.Base.Name, Version: img.Base.VersionSelector,
			IncludeDeprecated: img.Base.IncludeDeprecated, Path: img.Base.Path, SHA256: img.Base.SHA256},
		Boot: inspectedBoot{Firmware: string(img.Boot.Firmware), KernelCmdline: img.Boot.KernelCmdline},
		Output: inspectedOutput{Formats: img.Output.Formats, Compress: img.Output.Compress, VMDKSubformat: img.Output.VMDKSubformat,
			VHDSubformat: img.Output.VHDSubformat, QCOW2Compressed: img.Output.QCOW2Compressed, CPUs: img.Output.CPUs, MemoryMiB: img.Output.MemoryMiB},
		Catalog: inspectedCatalog{Visibility: img.Catalog.Visibility, ShareWith: img.Catalog.ShareWith, Encrypted: img.Catalog.Encrypted,
			ProductCodes: img.Catalog.ProductCodes},
		Distribute: []inspectedDist{},
		Variables:  []inspectedValue{}, Locals: []inspectedValue{}, Components: []inspectedComp{}, Steps: []inspectedStep{},
		NotReproducible: append([]string{}, r.NotReproducible...), FilesRead: map[string]string{},
	}
	if doc.Recipe.VarFiles == nil {
		doc.Recipe.VarFiles = []string{}
	}
	for _, d := range img.Distribute {
		doc.Distribute = append(doc.Distribute, inspectedDist{Name: d.Name, Images: d.Images})
	}
	public := r.PublicVariables()
	for _, v := range r.Declared {
		doc.Variables = append(doc.Variables, inspectedValue{Name: v.Name, Type: v.Type, Value: public[v.Name], Sensitive: v.Sensitive,
			Source: v.Source, Description: v.Description, At: v.Range.String()})
	}
	for _, l := range r.Locals {
		val := l.Value
		if l.Sensitive {
			val = recipes.Redacted
		}
		doc.Locals = append(doc.Locals, inspectedValue{Name: l.Name, Value: val, Sensitive: l.Sensitive, At: l.Range.String()})
	}
	for _, c := range img.Components {
		doc.Components = append(doc.Components, inspectedComp{Name: c.Name, Constraint: c.Constraint, Version: c.Version, Source: c.Source, Parameters: c.PublicParameters()})
	}
	for _, phase := range []struct {
		name  string
		steps []recipes.Step
	}{{"build", img.Build}, {"validate", img.Validate}, {"test", img.Tests}} {
		for _, s := range phase.steps {
			doc.Steps = append(doc.Steps, inspectedStep{Phase: phase.name, Name: s.Name, Action: string(s.Action.Kind), Component: s.Component,
				Timeout: s.Timeout.String(), Retries: s.Retries, At: s.Range.String()})
		}
	}
	if lc := img.Lifecycle; lc != nil {
		doc.Lifecycle = &inspectedLife{KeepLast: lc.KeepLast}
		if lc.DeprecateAfter > 0 {
			doc.Lifecycle.DeprecateAfter = units.FormatAge(lc.DeprecateAfter)
		}
		if lc.DeleteAfter > 0 {
			doc.Lifecycle.DeleteAfter = units.FormatAge(lc.DeleteAfter)
		}
	}
	for p, sum := range r.ReadFiles {
		if rel, err := filepath.Rel(r.Dir, p); err == nil && !strings.HasPrefix(rel, "..") {
			p = rel
		}
		doc.FilesRead[p] = sum
	}
	doc.Disk = inspectDisk(img)
	redactSecrets(doc, r)
	return doc
}

// inspectDisk plans the layout as the build will, where it can without the
// built tree: with size = "auto" the disk and the partition taking the rest
// are sized at build time.
func inspectDisk(img recipes.Image) inspectedDisk {
	d := img.Disk
	out := inspectedDisk{Size: d.Size, Auto: d.Auto, Table: string(d.Table), Grow: d.Grow, Default: len(d.Partitions) == 0, Partitions: []inspectedPart{}}
	if d.Auto {
		out.Headroom = d.Headroom
	}
	spec, err := builder.DiskSpec(img)
	if err != nil {
		out.Problem = err.Error()
		return out
	}
	parts := spec.PartSpecs()
	if !d.Auto {
		spec.Partitions = parts
		l, err := disk.Plan(spec)
		if err == nil {
			out.GUID = l.DiskGUID
			for _, p := range l.Partitions {
				out.Partitions = append(out.Partitions, inspectedPart{Number: p.Number, Label: p.Label, Type: typeName(p.Type.Alias, p.Type.GUID, p.Type.MBR),
					Filesystem: fsName(p.FS), Mount: p.Mount, Options: p.MountOpts, Start: p.Start, Size: p.Size, GUID: p.GUID, FSUUID: p.FSUUID})
			}
			return out
		}
		out.Problem = err.Error()
	}
	for i, p := range parts {
		out.Partitions = append(out.Partitions, inspectedPart{Number: i + 1, Label: p.Label, Type: typeName(p.Type.Alias, p.Type.GUID, p.Type.MBR),
			Filesystem: fsName(p.FS), Mount: p.Mount, Options: p.MountOpts, Size: p.Size})
	}
	return out
}

func typeName(alias, guid string, mbr byte) string {
	switch {
	case alias != "":
		return alias
	case guid != "":
		return guid
	}
	return fmt.Sprintf("0x%02x", mbr)
}

func fsName(fs string) string {
	if fs == "" {
		return "none"
	}
	return fs
}

// redactSecrets replaces, in every string of doc, the text of each
// sensitive value (variables, locals, component parameters) with
// recipes.Redacted: a description or a base argument computed from a secret
// must not show it either.
func redactSecrets(doc *inspection, r *recipes.Recipe) {
	var secrets []string
	collect := func(v any) {
		walkStrings(v, func(s string) string {
			if len(s) >= 4 {
				secrets = append(secrets, s)
			}
			return s
		})
	}
	for name := range r.Sensitive {
		collect(r.Variables[name])
	}
	for _, l := range r.Locals {
		if l.Sensitive {
			collect(l.Value)
		}
	}
	if len(secrets) == 0 {
		return
	}
	sort.Slice(secrets, func(i, j int) bool { return len(secrets[i]) > len(secrets[j]) })
	data, err := json.Marshal(doc)
	if err != nil {
		return
	}
	var generic any
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber() // keep every digit of large numbers
	if dec.Decode(&generic) != nil {
		return
	}
	generic = walkStrings(generic, func(s string) string {
		for _, secret := range secrets {
			s = strings.ReplaceAll(s, secret, recipes.Redacted)
		}
		return s
	})
	data, _ = json.Marshal(generic)
	*doc = inspection{}
	dec = json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	_ = dec.Decode(doc)
}

// walkStrings applies f to every string in v (maps, slices, strings) and
// returns v with the results.
func walkStrings(v any, f func(string) string) any {
	switch x := v.(type) {
	case string:
		return f(x)
	case []any:
		for i := range x {
			x[i] = walkStrings(x[i], f)
		}
	case map[string]any:
		for k := range x {
			x[k] = walkStrings(x[k], f)
		}
	}
	return v
}

// writeText prints the inspection for a person, section by section.
func (doc *inspection) writeText(w io.Writer) {
	// Each group of lines is aligned on its own.
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	defer func() { tw.Flush() }()
	line := func(format string, args ...any) { fmt.Fprintf(tw, format+"\n", args...) }
	group := func() {
		tw.Flush()
		tw = tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	}
	line("recipe\t%s\t(sha256 %s)", doc.Recipe.Path, short(doc.Recipe.SHA256))
	for _, f := range doc.Recipe.VarFiles {
		line("  auto var file\t%s", f)
	}
	line("image\t%s %s\t%s", doc.Image.Name, doc.Image.Version, doc.Image.Description)
	group()
	if len(doc.Variables) > 0 {
		line("variables")
		for _, v := range doc.Variables {
			line("  %s\t= %s\t%s\t(%s)\t%s", v.Name, compact(v.Value), v.Type, v.Source, v.Description)
		}
	}
	group()
	if len(doc.Locals) > 0 {
		line("locals")
		for _, l := range doc.Locals {
			line("  %s\t= %s", l.Name, compact(l.Value))
		}
	}
	group()
	b := doc.Base
	switch recipes.BaseKind(b.Type) {
	case recipes.BaseDebian:
		mirror := b.Mirror
		if mirror == "" {
			mirror = "the host's apt sources"
		}
		line("base\tdebian %s\tvariant %s, %s, components %s, mirror %s", b.Suite, b.Variant, b.Arch, strings.Join(b.Components, " "), mirror)
		if len(b.Packages) > 0 {
			line("  packages\t%s", strings.Join(b.Packages, " "))
		}
	case recipes.BaseImage:
		line("base\timage %s %s\t(newest build of the newest matching version%s)", b.Name, b.Version,
			map[bool]string{true: ", deprecated ones included", false: ""}[b.IncludeDeprecated])
	case recipes.BaseFile:
		line("base\tfile %s\t(sha256 %s)", b.Path, short(b.SHA256))
	}
	cmdline := strings.Join(doc.Boot.KernelCmdline, " ")
	if cmdline == "" {
		cmdline = "(none extra)"
	}
	line("boot\t%s\tkernel command line %s", doc.Boot.Firmware, cmdline)
	dk := doc.Disk
	size := units.FormatSize(dk.Size)
	if dk.Auto {
		size = fmt.Sprintf("auto (content + %d%%)", dk.Headroom)
	}
	layout := "declared layout"
	if dk.Default {
		layout = "the boot mode's default layout"
	}
	line("disk\t%s %s\t%s, grow at boot: %v", size, dk.Table, layout, dk.Grow)
	if dk.Problem != "" {
		line("  problem\t%s", dk.Problem)
	}
	group()
	line("  #\tlabel\ttype\tfilesystem\tmount\tstart\tsize\toptions")
	for _, p := range dk.Partitions {
		start, psize := units.FormatSize(p.Start), units.FormatSize(p.Size)
		if p.Start == 0 {
			start = "-"
		}
		if p.Size == 0 {
			psize = "the rest"
		}
		mount := p.Mount
		if mount == "" {
			mount = "-"
		}
		opts := p.Options
		if opts == "" {
			opts = "-"
		}
		line("  %d\t%s\t%s\t%s\t%s\t%s\t%s\t%s", p.Number, p.Label, p.Type, p.Filesystem, mount, start, psize, opts)
	}
	group()
	if len(doc.Components) > 0 {
		line("components")
		for _, c := range doc.Components {
			line("  %s\t%s -> %s\t%s\t%s", c.Name, c.Constraint, c.Version, c.Source, compact(c.Parameters))
		}
	}
	group()
	for _, phase := range []string{"build", "validate", "test"} {
		var names []string
		for _, s := range doc.Steps {
			if s.Phase == phase {
				names = append(names, fmt.Sprintf("%s (%s)", s.Name, s.Action))
			}
		}
		if len(names) > 0 {
			line("%s steps\t%s", phase, strings.Join(names, ", "))
		}
	}
	group()
	o := doc.Output
	line("output\t%s\traw compression %s", strings.Join(o.Formats, ", "), o.Compress)
	c := doc.Catalog
	line("catalog\t%s\t%s", c.Visibility, strings.Join(c.ShareWith, ", "))
	if lc := doc.Lifecycle; lc != nil {
		line("lifecycle\tkeep last %d, deprecate after %s, delete after %s", lc.KeepLast, orNone(lc.DeprecateAfter), orNone(lc.DeleteAfter))
	}
	for _, d := range doc.Distribute {
		line("distribute\t%s\t%s", d.Name, d.Images)
	}
	var files []string
	for p := range doc.FilesRead {
		files = append(files, p)
	}
	sort.Strings(files)
	for _, p := range files {
		line("file read\t%s\t(sha256 %s)", p, short(doc.FilesRead[p]))
	}
	if len(doc.NotReproducible) == 0 {
		line("reproducible\tyes: nothing in the recipe depends on when it is built")
	} else {
		line("reproducible\tno: %s", strings.Join(doc.NotReproducible, "; "))
	}
}

func short(sum string) string {
	if len(sum) > 16 {
		return sum[:16] + "..."
	}
	return sum
}

func orNone(s string) string {
	if s == "" {
		return "never"
	}
	return s
}

// compact is v as one line of JSON.
func compact(v any) string {
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(data)
}
