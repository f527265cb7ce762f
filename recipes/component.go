package recipes

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"sync"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"

	"github.com/kiln-build/kiln/internal/semver"
)

// Component is a component the recipe uses, resolved to one version.
type Component struct {
	Name       string
	Constraint string // as the recipe wrote it, such as "1.x.x"
	Version    string // the version it resolved to
	Source     string // "builtin" or the component file's path
	SHA256     string // of the component file
	Parameters map[string]any
	// Sensitive names the parameters whose value is computed from a
	// sensitive variable: they must be shown and recorded as Redacted.
	Sensitive map[string]bool
	Range     Range // the recipe's component block
	// FilesSHA256 covers the files its steps read from disk (file sources,
	// rendered; script files; the sha256 of downloads); "" when none.
	FilesSHA256 string
}

// PublicParameters is Parameters with the value of every sensitive
// parameter replaced by Redacted: what the manifest and kiln inspect show.
func (c *Component) PublicParameters() map[string]any { return redact(c.Parameters, c.Sensitive) }

// ComponentDigest lists the resolved components as NAME@VERSION+sha256:HEX
// (HEX: the component file's SHA-256), followed by "+files:HEX" when its
// steps read files from disk, in recipe order: what a build's input digest
// must include. Parameters are not in it: they come from the recipe and its
// variables.
func (r *Recipe) ComponentDigest() []string {
	out := []string{}
	for _, c := range r.Image.Components {
		d := fmt.Sprintf("%s@%s+sha256:%s", c.Name, c.Version, c.SHA256)
		if c.FilesSHA256 != "" {
			d += "+files:" + c.FilesSHA256
		}
		out = append(out, d)
	}
	return out
}

// SourceBuiltin is Component.Source for the built-in library.
const SourceBuiltin = "builtin"

var componentFileSchema = &hcl.BodySchema{
	Blocks: []hcl.BlockHeaderSchema{{Type: "component", LabelNames: []string{"name"}}},
}

var componentBodySchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{{Name: "version", Required: true}, {Name: "description"}},
	Blocks: []hcl.BlockHeaderSchema{
		{Type: "parameter", LabelNames: []string{"name"}},
		{Type: "build", LabelNames: []string{"type", "name"}},
		{Type: "validate", LabelNames: []string{"type", "name"}},
		{Type: "test", LabelNames: []string{"type", "name"}},
	},
}

var parameterSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{{Name: "type"}, {Name: "default"}, {Name: "description"}, {Name: "allowed"}, {Name: "pattern"}},
}

// componentRefSchema is a recipe's component "NAME" block.
var componentRefSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{{Name: "version"}, {Name: "parameters"}},
}

var componentNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)

// componentFile is one parsed component file, at one version.
type componentFile struct {
	Name, Description string
	Version           semver.Version
	Source            string // SourceBuiltin or the file's path
	Filename          string // for diagnostics
	Dir               string // "" for built-in components
	SHA256            string
	params            []*paramDecl
	steps             []*hcl.Block
	def               hcl.Range
}

type paramDecl struct {
	Name        string
	Type        cty.Type
	Default     cty.Value // cty.NilVal when required
	Description string
	Allowed     []cty.Value
	Pattern     *regexp.Regexp
	def         hcl.Range
}

// library is every component Kiln can use for a recipe, by name.
type library struct {
	byName map[string][]*componentFile
}

// loadLibrary reads the built-in library (nil: none) and each directory of
// paths.
func loadLibrary(builtin fs.FS, paths []string, pathsRange hcl.Range, files *Files) (*library, hcl.Diagnostics) {
	lib := &library{byName: map[string][]*componentFile{}}
	var diags hcl.Diagnostics
	add := func(c *componentFile) {
		for _, o := range lib.byName[c.Name] {
			if o.Version == c.Version {
				diags = append(diags, errorDiag(c.def, "Duplicate component version",
					fmt.Sprintf("Component %q version %s is defined twice: here and in %s. Give one of them another version, or remove it.", c.Name, c.Version, o.Filename)))
				return
			}
		}
		lib.byName[c.Name] = append(lib.byName[c.Name], c)
	}
	if builtin != nil {
		b := parsedBuiltin(builtin)
		for _, name := range b.names {
			if files != nil {
				files.add(name, b.sources[name])
			}
		}
		for _, d := range b.diags {
			dc := *d
			diags = append(diags, &dc)
		}
		for _, c := range b.comps {
			add(c)
		}
	}
	for _, dir := range paths {
		fi, err := os.Stat(dir)
		if err != nil || !fi.IsDir() {
			diags = append(diags, errorDiag(pathsRange, "Component directory not found",
				fmt.Sprintf("%q is not a directory. component_paths are directories of component files (*.hcl), relative to the recipe.", dir)))
			continue
		}
		matches, _ := filepath.Glob(filepath.Join(dir, "*.hcl"))
		sort.Strings(matches)
		for _, m := range matches {
			src, err := os.ReadFile(m)
			if err != nil {
				diags = append(diags, errorDiag(pathsRange, "Cannot read component file", fmt.Sprintf("%v. Check the file's permissions.", err)))
				continue
			}
			c, dd := parseComponentFile(m, dir, src, files)
			diags = append(diags, dd...)
			if c != nil {
				c.Source = m
				add(c)
			}
		}
	}
	return lib, diags
}

// builtinLibrary is a parsed built-in library. It is never changed after
// parseBuiltin makes it, so one can serve every recipe of a process.
type builtinLibrary struct {
	comps   []*componentFile
	diags   hcl.Diagnostics
	names   []string // the files, sorted, as "builtin/NAME.hcl"
	sources map[string][]byte
}

// builtinCache holds the parsed built-in library per file system value,
// so that a process that reads many recipes (kiln schedule, the fuzzer)
// reads and parses it once. A file system whose value cannot be a map key
// is parsed every time.
var builtinCache = struct {
	sync.Mutex
	m map[fs.FS]*builtinLibrary
}{m: map[fs.FS]*builtinLibrary{}}

func parsedBuiltin(fsys fs.FS) *builtinLibrary {
	if !reflect.TypeOf(fsys).Comparable() {
		return parseBuiltin(fsys)
	}
	builtinCache.Lock()
	defer builtinCache.Unlock()
	if b := builtinCache.m[fsys]; b != nil {
		return b
	}
	b := parseBuiltin(fsys)
	builtinCache.m[fsys] = b
	return b
}

func parseBuiltin(fsys fs.FS) *builtinLibrary {
	b := &builtinLibrary{sources: map[string][]byte{}}
	names, _ := fs.Glob(fsys, "*.hcl") // the pattern is valid
	files := newFiles("")
	for _, n := range names {
		src, err := fs.ReadFile(fsys, n)
		if err != nil {
			b.diags = append(b.diags, errorDiag(fileStart("builtin/"+n), "Cannot read built-in component",
				fmt.Sprintf("%v. This is a bug in Kiln: please report it.", err)))
			continue
		}
		c, dd := parseComponentFile("builtin/"+n, "", src, files)
		b.diags = append(b.diags, dd...)
		b.names = append(b.names, "builtin/"+n)
		b.sources["builtin/"+n] = src
		if c != nil {
			c.Source = SourceBuiltin
			b.comps = append(b.comps, c)
		}
	}
	return b
}

// parseComponentFile reads a component file's header: name, version,
// description and parameters. Its steps are decoded per use, with the
// parameters' values in scope.
func parseComponentFile(filename, dir string, src []byte, files *Files) (*componentFile, hcl.Diagnostics) {
	if files != nil {
		files.add(filename, src)
	}
	f, diags := parseConfig(src, filename)
	if diags.HasErrors() {
		return nil, diags
	}
	content, dd := f.Body.Content(componentFileSchema)
	diags = append(diags, dd...)
	if len(content.Blocks) != 1 {
		return nil, append(diags, errorDiag(fileStart(filename), "One component per file",
			"A component file holds exactly one component \"NAME\" { version = \"1.0.0\" ... } block."))
	}
	block := content.Blocks[0]
	sum := sha256.Sum256(src)
	c := &componentFile{Name: block.Labels[0], Filename: filename, Dir: dir, SHA256: hex.EncodeToString(sum[:]), def: block.DefRange}
	if !componentNameRE.MatchString(c.Name) {
		diags = append(diags, errorDiag(block.LabelRanges[0], "Invalid component name",
			fmt.Sprintf("%q cannot name a component: use lowercase letters, digits, - and _, such as \"nginx\".", c.Name)))
	}
	body, dd := block.Body.Content(componentBodySchema)
	diags = append(diags, dd...)
	d := &decoder{}
	if a := body.Attributes["version"]; a != nil {
		var v string
		if s, ok, dd := d.str(a, versionArg); ok {
			v = s
		} else {
			diags = append(diags, dd...)
		}
		if !semverRE.MatchString(v) {
			diags = append(diags, errorDiag(a.Expr.Range(), "Invalid version",
				fmt.Sprintf("%q is not a version of the form MAJOR.MINOR.PATCH, such as \"1.2.0\".", v)))
		} else {
			c.Version, _ = semver.Parse(v)
		}
	}
	if a := body.Attributes["description"]; a != nil {
		s, _, dd := d.str(a, descriptionArg)
		diags = append(diags, dd...)
		c.Description = s
	}
	seen := map[string]bool{}
	for _, b := range body.Blocks {
		if b.Type != "parameter" {
			c.steps = append(c.steps, b)
			continue
		}
		p, dd := decodeParameter(b)
		diags = append(diags, dd...)
		if seen[p.Name] {
			diags = append(diags, errorDiag(b.DefRange, "Duplicate parameter", fmt.Sprintf("Parameter %q is declared twice; remove one.", p.Name)))
			continue
		}
		seen[p.Name] = true
		c.params = append(c.params, p)
	}
	if diags.HasErrors() {
		return nil, diags
	}
	return c, diags
}

func decodeParameter(b *hcl.Block) (*paramDecl, hcl.Diagnostics) {
	p := &paramDecl{Name: b.Labels[0], Type: cty.String, def: b.DefRange}
	content, diags := b.Body.Content(parameterSchema)
	if a := content.Attributes["type"]; a != nil {
		t, dd := decodeTypeExpr(a.Expr)
		diags = append(diags, dd...)
		p.Type = t
	}
	conv := func(a *hcl.Attribute) (cty.Value, bool) {
		v, dd := a.Expr.Value(nil)
		if dd.HasErrors() {
			diags = append(diags, dd...)
			return cty.NilVal, false
		}
		cv, err := convert.Convert(v, p.Type)
		if err != nil {
			diags = append(diags, errorDiag(a.Expr.Range(), "Incorrect parameter type",
				fmt.Sprintf("This value is %s, but parameter %q is of type %s.", friendlyType(v.Type()), p.Name, typeString(p.Type))))
			return cty.NilVal, false
		}
		return cv, true
	}
	if a := content.Attributes["default"]; a != nil {
		if v, ok := conv(a); ok {
			p.Default = v
		}
	}
	if a := content.Attributes["description"]; a != nil {
		p.Description, _, _ = (&decoder{}).str(a, descriptionArg)
	}
	if a := content.Attributes["allowed"]; a != nil {
		v, dd := a.Expr.Value(nil)
		diags = append(diags, dd...)
		if !dd.HasErrors() && v.CanIterateElements() {
			for _, el := range v.AsValueSlice() {
				if cv, err := convert.Convert(el, p.Type); err == nil {
					p.Allowed = append(p.Allowed, cv)
				}
			}
		}
	}
	if a := content.Attributes["pattern"]; a != nil {
		s, _, dd := (&decoder{}).str(a, arg{"pattern", `"^[a-z]+$"`, false})
		diags = append(diags, dd...)
		re, err := regexp.Compile(s)
		if err != nil {
			diags = append(diags, errorDiag(a.Expr.Range(), "Invalid pattern", fmt.Sprintf("%v. Write a Go regular expression, such as \"^[a-z]+$\".", err)))
		} else {
			p.Pattern = re
		}
	}
	return p, diags
}

// loadLibraryOnce loads the library at the first call, so that a recipe's
// component_paths are checked even when it uses no component.
func (d *decoder) loadLibraryOnce() hcl.Diagnostics {
	if d.lib != nil {
		return nil
	}
	lib, diags := loadLibrary(d.builtin, d.paths, d.pathsRange, d.files)
	d.lib = lib
	return diags
}

// resolve picks the newest version of name that sel selects.
func (l *library) resolve(name string, sel semver.Selector) (*componentFile, []string) {
	cands := l.byName[name]
	vs := make([]semver.Version, len(cands))
	var have []string
	for i, c := range cands {
		vs[i] = c.Version
		have = append(have, c.Version.String())
	}
	sort.Strings(have)
	if i := sel.Newest(vs); i >= 0 {
		return cands[i], have
	}
	return nil, have
}

func (l *library) names() []string {
	var out []string
	for n := range l.byName {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

var componentVersionArg = arg{"version", `"1.x.x"`, true}

// componentUse is a recipe's component block, resolved and with its steps
// decoded.
type componentUse struct {
	Component
	build, validate, tests []*stepBlock
}

// decodeComponentRef resolves a recipe's component block against the
// library and decodes the component's steps with its parameters' values.
func (d *decoder) decodeComponentRef(block *hcl.Block) (*componentUse, hcl.Diagnostics) {
	content, diags := block.Body.Content(componentRefSchema)
	diags = append(diags, d.loadLibraryOnce()...)
	name := block.Labels[0]
	use := &componentUse{Component: Component{Name: name, Range: toRange(block.DefRange), Parameters: map[string]any{}}}
	src := newDecoded("component", block.DefRange, content.Attributes)
	d.getStr(src, componentVersionArg, &use.Constraint, &diags)
	if _, ok := d.lib.byName[name]; !ok {
		return nil, append(diags, errorDiag(block.LabelRanges[0], "Unknown component",
			fmt.Sprintf("There is no component %q in the built-in library or the recipe's component_paths.%s Available: %s.", name, suggest(name, d.lib.names()), strings.Join(d.lib.names(), ", "))))
	}
	va, ok := src.valid("version")
	if !ok {
		return nil, diags
	}
	sel, err := semver.ParseSelector(use.Constraint)
	if err != nil {
		return nil, append(diags, errorDiag(va.Expr.Range(), "Invalid version constraint",
			fmt.Sprintf("%s. A constraint is an exact version (\"1.2.0\") or one with x for the parts that may vary, from the right: \"1.2.x\", \"1.x.x\" or \"x.x.x\".", capitalize(err.Error()))))
	}
	comp, have := d.lib.resolve(name, sel)
	if comp == nil {
		return nil, append(diags, errorDiag(va.Expr.Range(), "Unresolvable component version",
			fmt.Sprintf("No version of component %q matches %q. Available versions: %s.", name, use.Constraint, strings.Join(have, ", "))))
	}
	use.Version, use.Source, use.SHA256 = comp.Version.String(), comp.Source, comp.SHA256

	values, sensitive, pd := d.componentParams(comp, content.Attributes["parameters"], block.DefRange)
	diags = append(diags, pd...)
	if pd.HasErrors() {
		return nil, diags
	}
	for k, v := range values {
		use.Parameters[k] = goValue(v)
	}
	if len(sensitive) > 0 {
		use.Sensitive = sensitive
	}
	scope := funcScope{dir: comp.Dir, what: fmt.Sprintf("component %q (%s)", name, comp.Filename), files: map[string]string{}, log: d.log}
	if scope.log == nil {
		scope.log = newReadLog(nil)
	}
	ctx := &hcl.EvalContext{Variables: map[string]cty.Value{"param": cty.ObjectVal(values)}, Functions: scope.functions()}
	cd := &decoder{ctx: ctx, dir: comp.Dir, files: d.files, log: scope.log}
	for _, b := range comp.steps {
		timeout := DefaultBuildTimeout
		if b.Type == "test" {
			timeout = DefaultTestTimeout
		}
		s, dd := cd.decodeStepBlock(b, timeout)
		diags = append(diags, dd...)
		if s == nil {
			continue
		}
		diags = append(diags, s.validate(cd)...)
		s.Component = name
		s.Name = name + "/" + s.Name
		switch b.Type {
		case "build":
			use.build = append(use.build, s)
		case "validate":
			use.validate = append(use.validate, s)
		case "test":
			use.tests = append(use.tests, s)
		}
	}
	if diags.HasErrors() {
		return use, diags // paths may be unresolved: there is nothing to digest
	}
	var dd hcl.Diagnostics
	use.FilesSHA256, dd = filesDigest(append(append(append([]*stepBlock{}, use.build...), use.validate...), use.tests...), scope.files)
	return use, append(diags, dd...)
}

// filesDigest hashes what a component's steps read from disk, and the
// files its expressions read (path to sha256), "" if nothing. A script
// that cannot be read is reported, not hashed as empty.
func filesDigest(steps []*stepBlock, read map[string]string) (string, hcl.Diagnostics) {
	var diags hcl.Diagnostics
	h := sha256.New()
	n := 0
	paths := make([]string, 0, len(read))
	for p := range read {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	for _, p := range paths {
		fmt.Fprintf(h, "read %s %s\n", filepath.Base(p), read[p])
		n++
	}
	for _, s := range steps {
		a := s.Action
		switch {
		case a.Kind == KindFile && a.File != nil && a.File.Source != "":
			fmt.Fprintf(h, "file %s %d\n", s.Name, len(a.File.Content))
			h.Write(a.File.Content)
		case a.Kind == KindShell && a.Shell != nil && a.Shell.Script != "":
			data, err := os.ReadFile(a.Shell.Script)
			if err != nil {
				r := s.src.def
				if attr := s.src.attrs["script"]; attr != nil {
					r = attr.Expr.Range()
				}
				diags = append(diags, errorDiag(r, "Cannot read script", fmt.Sprintf("%v. Check the file's permissions.", err)))
				continue
			}
			fmt.Fprintf(h, "script %s %d\n", s.Name, len(data))
			h.Write(data)
		case a.Kind == KindDownload && a.Download != nil:
			fmt.Fprintf(h, "download %s %s\n", s.Name, strings.ToLower(a.Download.SHA256))
		default:
			continue
		}
		n++
	}
	if n == 0 || diags.HasErrors() {
		return "", diags
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// componentParams checks the recipe's parameters against the component's
// declarations and returns every parameter's value, defaults applied.
func (d *decoder) componentParams(comp *componentFile, attr *hcl.Attribute, def hcl.Range) (map[string]cty.Value, map[string]bool, hcl.Diagnostics) {
	var diags hcl.Diagnostics
	decl := map[string]*paramDecl{}
	var declared []string
	for _, p := range comp.params {
		decl[p.Name] = p
		declared = append(declared, p.Name)
	}
	type given struct {
		val        cty.Value
		key, value hcl.Range
	}
	got := map[string]given{}
	if attr != nil {
		if pairs, pd := hcl.ExprMap(attr.Expr); !pd.HasErrors() {
			for _, kv := range pairs {
				var key string
				if kw := hcl.ExprAsKeyword(kv.Key); kw != "" {
					key = kw
				} else if kval, kd := unmarkedValue(kv.Key, d.ctx); !kd.HasErrors() && kval.Type() == cty.String && kval.IsKnown() && !kval.IsNull() {
					key = kval.AsString()
				} else {
					diags = append(diags, errorDiag(kv.Key.Range(), "Invalid parameter name", "Parameter names are identifiers or strings, such as parameters = { port = 8080 }."))
					continue
				}
				v, vd := kv.Value.Value(d.ctx)
				diags = append(diags, vd...)
				if vd.HasErrors() {
					continue
				}
				got[key] = given{val: v, key: kv.Key.Range(), value: kv.Value.Range()}
			}
		} else {
			v, vd := attr.Expr.Value(d.ctx)
			diags = append(diags, vd...)
			if !vd.HasErrors() {
				v, marks := v.Unmark() // the object's own marks go to each value
				if !v.IsKnown() {
					return nil, nil, diags
				}
				if v.IsNull() || !(v.Type().IsObjectType() || v.Type().IsMapType()) {
					return nil, nil, append(diags, errorDiag(attr.Expr.Range(), "Incorrect attribute value type",
						"parameters must be a map of parameter names to values, such as parameters = { port = 8080 }."))
				}
				for k, el := range v.AsValueMap() {
					got[k] = given{val: el.WithMarks(marks), key: attr.Expr.Range(), value: attr.Expr.Range()}
				}
			}
		}
	}
	keys := make([]string, 0, len(got))
	for k := range got {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	values := map[string]cty.Value{}
	sensitive := map[string]bool{}
	for _, k := range keys {
		g := got[k]
		p := decl[k]
		if p == nil {
			hint := "It declares no parameters."
			if len(declared) > 0 {
				hint = "Its parameters: " + strings.Join(declared, ", ") + "."
			}
			diags = append(diags, errorDiag(g.key, "Unknown component parameter",
				fmt.Sprintf("Component %q %s has no parameter %q.%s %s", comp.Name, comp.Version, k, suggest(k, declared), hint)))
			continue
		}
		v, marks := g.val.UnmarkDeep()
		if _, ok := marks[sensitiveMark]; ok {
			sensitive[k] = true
		}
		if !v.IsWhollyKnown() {
			values[k] = cty.UnknownVal(p.Type)
			continue
		}
		cv, err := convert.Convert(v, p.Type)
		if err != nil || cv.IsNull() {
			diags = append(diags, errorDiag(g.value, "Incorrect parameter type",
				fmt.Sprintf("Parameter %q of component %q is of type %s, and this is %s. Write, for example, %s = %s.", k, comp.Name, typeString(p.Type), friendlyType(v.Type()), k, typeExample(p.Type))))
			continue
		}
		if msg := p.check(cv); msg != "" {
			diags = append(diags, errorDiag(g.value, "Invalid parameter value", msg))
			continue
		}
		values[k] = cv
	}
	for _, p := range comp.params {
		if _, ok := got[p.Name]; ok {
			continue
		}
		if p.Default == cty.NilVal {
			diags = append(diags, errorDiag(def, "Missing component parameter",
				fmt.Sprintf("Component %q needs parameter %q (%s%s): add parameters = { %s = %s }.", comp.Name, p.Name, typeString(p.Type), describe(p.Description), p.Name, typeExample(p.Type))))
			continue
		}
		values[p.Name] = p.Default
	}
	for _, p := range comp.params {
		if _, ok := values[p.Name]; !ok {
			values[p.Name] = cty.UnknownVal(p.Type)
		}
	}
	return values, sensitive, diags
}

func describe(s string) string {
	if s == "" {
		return ""
	}
	return ": " + s
}

// check applies a parameter's allowed values and pattern; "" means fine.
func (p *paramDecl) check(v cty.Value) string {
	if len(p.Allowed) > 0 {
		ok := false
		var shown []string
		for _, a := range p.Allowed {
			if a.Equals(v).True() {
				ok = true
			}
			shown = append(shown, showValue(a))
		}
		if !ok {
			return fmt.Sprintf("Parameter %q cannot be %s. Allowed values: %s.", p.Name, showValue(v), strings.Join(shown, ", "))
		}
	}
	if p.Pattern != nil {
		var strs []string
		switch {
		case v.Type() == cty.String:
			strs = []string{v.AsString()}
		case v.Type().IsListType() && v.Type().ElementType() == cty.String:
			for _, el := range v.AsValueSlice() {
				strs = append(strs, el.AsString())
			}
		}
		for _, s := range strs {
			if !p.Pattern.MatchString(s) {
				return fmt.Sprintf("Parameter %q: %q does not match the pattern %s that the component requires.", p.Name, s, p.Pattern.String())
			}
		}
	}
	return ""
}

func showValue(v cty.Value) string {
	switch v.Type() {
	case cty.String:
		return fmt.Sprintf("%q", v.AsString())
	case cty.Number:
		return v.AsBigFloat().Text('f', -1)
	case cty.Bool:
		return fmt.Sprint(v.True())
	}
	return fmt.Sprint(goValue(v))
}

// addComponent resolves a component block and adds its steps to the image
// where the block is.
func (img *imageBlock) addComponent(d *decoder, b *hcl.Block) hcl.Diagnostics {
	if first, ok := img.componentSeen[b.Labels[0]]; ok {
		return hcl.Diagnostics{errorDiag(b.DefRange, "Duplicate component",
			fmt.Sprintf("Component %q is already used at %s. Use each component once; merge the parameters.", b.Labels[0], at(first)))}
	}
	if img.componentSeen == nil {
		img.componentSeen = map[string]hcl.Range{}
	}
	img.componentSeen[b.Labels[0]] = b.DefRange
	use, diags := d.decodeComponentRef(b)
	if use == nil {
		return diags
	}
	img.components = append(img.components, use)
	img.build = append(img.build, use.build...)
	img.validateSteps = append(img.validateSteps, use.validate...)
	img.tests = append(img.tests, use.tests...)
	return diags
}

func (img *imageBlock) assembleComponents() {
	img.Validate, img.Components = []Step{}, []Component{}
	for _, s := range img.validateSteps {
		img.Validate = append(img.Validate, s.Step)
	}
	for _, u := range img.components {
		img.Components = append(img.Components, u.Component)
	}
}
