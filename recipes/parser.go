package recipes

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
)

// rootSchema is the top level of a recipe.
var rootSchema = &hcl.BodySchema{
	Blocks: []hcl.BlockHeaderSchema{
		{Type: "kiln"},
		{Type: "variable", LabelNames: []string{"name"}},
		{Type: "locals"},
		{Type: "image", LabelNames: []string{"name"}},
	},
}

// internalErrorSummary marks the diagnostic Parse returns if it panics,
// which is always a bug in this package.
const internalErrorSummary = "Internal error in the recipe parser"

// AutoVarFilePatterns are the variables files Load reads from the recipe's
// directory without being told, in lexical order of their names, after
// KILN_VAR_ and before -var-file.
var AutoVarFilePatterns = []string{"*.auto.kilnvars.hcl", "*.auto.kilnvars.json"}

// Load reads the recipe at path and parses it with Parse, with the
// *.auto.kilnvars.hcl and *.auto.kilnvars.json files next to it (see
// AutoVarFiles). The returned Files are for WriteDiagnostics.
func Load(path string, opts LoadOptions) (*Recipe, *Files, hcl.Diagnostics) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, newFiles(path), hcl.Diagnostics{errorDiag(fileStart(path), "Cannot read recipe",
			fmt.Sprintf("%v. Check the recipe's path.", err))}
	}
	opts.autoVarFiles = AutoVarFiles(path)
	return Parse(path, src, opts)
}

// AutoVarFiles lists the auto-loaded variables files of the recipe at
// path: those matching AutoVarFilePatterns in its directory, sorted by name.
func AutoVarFiles(path string) []string {
	dir := filepath.Dir(path)
	var out []string
	for _, pat := range AutoVarFilePatterns {
		m, _ := filepath.Glob(filepath.Join(dir, pat)) // the patterns are valid
		out = append(out, m...)
	}
	sort.Slice(out, func(i, j int) bool { return filepath.Base(out[i]) < filepath.Base(out[j]) })
	return out
}

// Parse parses and checks the recipe src, read from filename. Script paths
// and the paths file() and templatefile() read are resolved against
// filepath.Dir(filename), and the files must exist. Parse reads no
// auto-loaded variables files: Load does.
//
// It reports every problem it finds, in one run. The Recipe is nil whenever
// the diagnostics have an error; otherwise it is complete, with every
// default applied. When the kiln block's required_version excludes
// FormatVersion, only that problem is reported: the rest of the recipe is
// written for another version of the language. When the recipe has syntax
// errors, only those are reported (as many as the parser can find).
func Parse(filename string, src []byte, opts LoadOptions) (r *Recipe, files *Files, diags hcl.Diagnostics) {
	files = newFiles(filename)
	defer func() {
		if p := recover(); p != nil {
			r = nil
			diags = append(diags, errorDiag(fileStart(filename), internalErrorSummary,
				fmt.Sprintf("Kiln failed while reading this recipe (%v). This is a bug in Kiln: please report it, with the recipe.", p)))
		}
	}()
	files.add(filename, src)
	dir, err := filepath.Abs(filepath.Dir(filename))
	if err != nil {
		dir = filepath.Dir(filename)
	}
	sum := sha256.Sum256(src)
	r = &Recipe{Path: filename, Dir: dir, SHA256: hex.EncodeToString(sum[:])}

	f, syntaxDiags := parseConfig(src, filename)
	if f == nil || f.Body == nil {
		return nil, files, syntaxDiags
	}
	if body, ok := f.Body.(*hclsyntax.Body); ok {
		if nd := checkNumbers(body); nd.HasErrors() {
			return nil, files, append(syntaxDiags, nd...)
		}
	}
	content, diags := f.Body.Content(rootSchema)

	var kilnBlocks, variableBlocks, localsBlocks, imageBlocks []*hcl.Block
	for _, b := range content.Blocks {
		switch b.Type {
		case "kiln":
			kilnBlocks = append(kilnBlocks, b)
		case "variable":
			variableBlocks = append(variableBlocks, b)
		case "locals":
			localsBlocks = append(localsBlocks, b)
		case "image":
			imageBlocks = append(imageBlocks, b)
		}
	}

	var componentPaths []string
	var pathsRange hcl.Range
	// 1. The kiln block, first: a recipe for another format version is
	// reported as just that.
	for i, b := range kilnBlocks {
		if i > 0 {
			diags = append(diags, errorDiag(b.DefRange, "Duplicate kiln block",
				fmt.Sprintf("A recipe has at most one kiln block, and there is one at %s already. Merge the two.", at(kilnBlocks[0].DefRange))))
			continue
		}
		k, kd := decodeKilnBlock(b)
		vd, unsatisfied := k.checkVersion(FormatVersion)
		if unsatisfied {
			return nil, files, vd
		}
		diags = append(append(diags, kd...), vd...)
		r.RequiredVersion = k.RequiredVersion
		componentPaths, pathsRange = k.ComponentPaths, k.pathsRange
	}
	if syntaxDiags.HasErrors() {
		return nil, files, syntaxDiags
	}
	diags = append(syntaxDiags, diags...)

	// 2. Variables, their values from the environment, the var files and
	// -var, and their validation rules.
	var vars []*variableBlock
	for _, b := range variableBlocks {
		v, vd := decodeVariableBlock(b)
		diags = append(diags, vd...)
		vars = append(vars, v)
	}
	values, sources, vd := resolveVariables(vars, opts, files)
	diags = append(diags, vd...)
	log := newReadLog(opts.Env)
	ctx := evalContext(vars, values, funcScope{dir: dir, what: filepath.Base(filename), files: log.files, log: log}.functions())
	diags = append(diags, validateVariables(vars, values, sources, ctx)...)
	r.Variables = goValues(values)
	for _, v := range vars {
		if v.Sensitive {
			if r.Sensitive == nil {
				r.Sensitive = map[string]bool{}
			}
			r.Sensitive[v.Name] = true
		}
	}
	r.Declared = declaredVariables(vars, sources)

	// 3. Locals, with var in scope.
	locals, ld := decodeLocals(localsBlocks, ctx)
	diags = append(diags, ld...)
	r.Locals = locals

	// 4. The image, with var and local in scope.
	d := &decoder{ctx: ctx, dir: dir, files: files, builtin: opts.Library, pathsRange: pathsRange, log: log}
	for _, p := range componentPaths {
		if !filepath.IsAbs(p) {
			p = filepath.Join(dir, p)
		}
		d.paths = append(d.paths, p)
	}
	if len(imageBlocks) == 0 {
		diags = append(diags, errorDiag(fileStart(filename), "Missing image block",
			"A recipe describes one image: add an image \"NAME\" block with a version and a base block, such as\n  image \"debian-minimal\" {\n    version = \"1.0.0\"\n    base \"debian\" {\n      suite = \"bookworm\"\n    }\n  }"))
	}
	for i, b := range imageBlocks {
		img, id := d.decodeImageBlock(b)
		diags = append(diags, id...)
		if i == 0 {
			r.Image = img.Image
			continue
		}
		diags = append(diags, errorDiag(b.DefRange, "Duplicate image block",
			fmt.Sprintf("A recipe describes exactly one image, and there is one at %s already. Move this image into a recipe file of its own.", at(imageBlocks[0].DefRange))))
	}

	diags = append(diags, d.loadLibraryOnce()...)
	r.ReadFiles = log.files
	r.NotReproducible = log.notReproducible

	explainReferences(diags)
	sortDiagnostics(diags, filename)
	if diags.HasErrors() {
		return nil, files, diags
	}
	return r, files, diags
}

// sortDiagnostics orders diagnostics about the recipe file by position,
// after those about other sources (-var values, var files), which keep
// their order.
func sortDiagnostics(diags hcl.Diagnostics, filename string) {
	key := func(i int) (int, int) {
		if s := diags[i].Subject; s != nil && s.Filename == filename {
			return 1, s.Start.Byte
		}
		return 0, 0
	}
	sort.SliceStable(diags, func(i, j int) bool {
		gi, bi := key(i)
		gj, bj := key(j)
		if gi != gj {
			return gi < gj
		}
		return bi < bj
	})
}
