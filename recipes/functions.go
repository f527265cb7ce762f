package recipes

import (
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"hash"
	"maps"
	"math/big"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/ext/tryfunc"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	ctyyaml "github.com/zclconf/go-cty-yaml"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
	"github.com/zclconf/go-cty/cty/function"
	"github.com/zclconf/go-cty/cty/function/stdlib"
)

// The functions recipes and component files can call: go-cty's standard
// library and HCL's try and can, under the names Terraform and Packer give
// them, plus the hashes, encodings and file functions those tools add.
// docs/recipes.md lists them. pureFunctions is built once and shared; the
// functions that read files or the clock are made per file (scopeFunctions),
// since they resolve paths against that file's directory and record what
// they read.
var pureFunctions = map[string]function.Function{
	// strings
	"chomp":         stdlib.ChompFunc,
	"endswith":      endsWithFunc,
	"format":        boundedFormat(stdlib.FormatFunc),
	"formatlist":    boundedFormat(stdlib.FormatListFunc),
	"indent":        stdlib.IndentFunc,
	"join":          stdlib.JoinFunc,
	"lower":         stdlib.LowerFunc,
	"regex":         stdlib.RegexFunc,
	"regexall":      stdlib.RegexAllFunc,
	"regex_replace": stdlib.RegexReplaceFunc,
	"replace":       replaceFunc,
	"split":         stdlib.SplitFunc,
	"startswith":    startsWithFunc,
	"strcontains":   strContainsFunc,
	"strrev":        stdlib.ReverseFunc,
	"substr":        stdlib.SubstrFunc,
	"title":         stdlib.TitleFunc,
	"trim":          stdlib.TrimFunc,
	"trimprefix":    stdlib.TrimPrefixFunc,
	"trimsuffix":    stdlib.TrimSuffixFunc,
	"trimspace":     stdlib.TrimSpaceFunc,
	"upper":         stdlib.UpperFunc,

	// collections
	"alltrue":         allTrueFunc,
	"anytrue":         anyTrueFunc,
	"chunklist":       stdlib.ChunklistFunc,
	"coalesce":        coalesceFunc,
	"coalescelist":    stdlib.CoalesceListFunc,
	"compact":         stdlib.CompactFunc,
	"concat":          stdlib.ConcatFunc,
	"contains":        stdlib.ContainsFunc,
	"distinct":        stdlib.DistinctFunc,
	"element":         stdlib.ElementFunc,
	"flatten":         stdlib.FlattenFunc,
	"index":           stdlib.IndexFunc,
	"keys":            stdlib.KeysFunc,
	"length":          lengthFunc,
	"lookup":          stdlib.LookupFunc,
	"merge":           stdlib.MergeFunc,
	"one":             oneFunc,
	"range":           stdlib.RangeFunc,
	"reverse":         stdlib.ReverseListFunc,
	"setintersection": stdlib.SetIntersectionFunc,
	"setsubtract":     stdlib.SetSubtractFunc,
	"setunion":        stdlib.SetUnionFunc,
	"slice":           stdlib.SliceFunc,
	"sort":            stdlib.SortFunc,
	"sum":             sumFunc,
	"values":          stdlib.ValuesFunc,
	"zipmap":          stdlib.ZipmapFunc,

	// encodings
	"base64decode": base64DecodeFunc,
	"base64encode": base64EncodeFunc,
	"csvdecode":    stdlib.CSVDecodeFunc,
	"jsondecode":   stdlib.JSONDecodeFunc,
	"jsonencode":   stdlib.JSONEncodeFunc,
	"urlencode":    urlEncodeFunc,
	"yamlencode":   ctyyaml.YAMLEncodeFunc,

	// numbers
	"abs":      stdlib.AbsoluteFunc,
	"ceil":     stdlib.CeilFunc,
	"floor":    stdlib.FloorFunc,
	"log":      stdlib.LogFunc,
	"max":      stdlib.MaxFunc,
	"min":      stdlib.MinFunc,
	"parseint": stdlib.ParseIntFunc,
	"pow":      stdlib.PowFunc,
	"signum":   stdlib.SignumFunc,

	// dates (timestamp is in scopeFunctions)
	"formatdate": stdlib.FormatDateFunc,
	"timeadd":    stdlib.TimeAddFunc,

	// hashes
	"md5":          hashFunc(md5.New, hex.EncodeToString),
	"sha1":         hashFunc(sha1.New, hex.EncodeToString),
	"sha256":       hashFunc(sha256.New, hex.EncodeToString),
	"sha512":       hashFunc(sha512.New, hex.EncodeToString),
	"base64sha256": hashFunc(sha256.New, base64.StdEncoding.EncodeToString),
	"base64sha512": hashFunc(sha512.New, base64.StdEncoding.EncodeToString),

	// paths (as strings; the file functions are in scopeFunctions)
	"basename": pathFunc(path.Base),
	"dirname":  pathFunc(path.Dir),

	// types and errors
	"can":      tryfunc.CanFunc,
	"try":      tryfunc.TryFunc,
	"tobool":   stdlib.MakeToFunc(cty.Bool),
	"tolist":   stdlib.MakeToFunc(cty.List(cty.DynamicPseudoType)),
	"tomap":    stdlib.MakeToFunc(cty.Map(cty.DynamicPseudoType)),
	"tonumber": stdlib.MakeToFunc(cty.Number),
	"toset":    stdlib.MakeToFunc(cty.Set(cty.DynamicPseudoType)),
	"tostring": stdlib.MakeToFunc(cty.String),
}

// scopeFunctionNames are the functions scopeFunctions adds.
var scopeFunctionNames = []string{"file", "filebase64", "fileexists", "templatefile", "timestamp"}

// FunctionNames lists every function a recipe or component file can call,
// sorted.
func FunctionNames() []string {
	names := append([]string{}, scopeFunctionNames...)
	for n := range pureFunctions {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// maxReadFile bounds what file, filebase64 and templatefile read.
const maxReadFile = 16 << 20

// funcScope is what the functions that read files or the clock need for
// one file: the directory relative paths resolve against ("" for a built-in
// component, which has no files), what to call the file in messages, and
// the log that records what they read.
type funcScope struct {
	dir   string
	what  string            // "web.hcl", "component \"nginx\""
	files map[string]string // what it read: absolute path -> hex sha256, or FileAbsent
	log   *readLog
}

// readLog records what a recipe's expressions read from outside the
// recipe: the recipe's own files (for the inputs digest; a component's are
// in its scope) and the clock (which makes the build not reproducible).
type readLog struct {
	files map[string]string // absolute path -> hex sha256 of the content, or FileAbsent
	// notReproducible says why the result depends on when it was built,
	// such as "timestamp() in web.hcl".
	notReproducible []string
	// epoch is SOURCE_DATE_EPOCH when set: timestamp() returns it.
	epoch *time.Time
}

// FileAbsent is the digest recorded for a path fileexists found absent.
const FileAbsent = "absent"

func newReadLog(env []string) *readLog {
	l := &readLog{files: map[string]string{}}
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "SOURCE_DATE_EPOCH="); ok {
			var n big.Int
			if _, ok := n.SetString(v, 10); ok && n.IsInt64() && n.Int64() > 0 {
				t := time.Unix(n.Int64(), 0).UTC()
				l.epoch = &t
			}
		}
	}
	return l
}

func (l *readLog) clockRead(what string) {
	reason := "timestamp() in " + what
	if !contains(l.notReproducible, reason) {
		l.notReproducible = append(l.notReproducible, reason)
	}
}

// functions returns the whole function table for a file in scope s.
func (s funcScope) functions() map[string]function.Function {
	fns := maps.Clone(pureFunctions)
	fns["file"] = s.fileFunc(false)
	fns["filebase64"] = s.fileFunc(true)
	fns["fileexists"] = s.fileExistsFunc()
	fns["timestamp"] = s.timestampFunc()
	fns["templatefile"] = s.templateFileFunc(fns)
	return fns
}

// resolve makes p absolute against the scope's directory.
func (s funcScope) resolve(p string) (string, error) {
	if s.dir == "" {
		return "", fmt.Errorf("built-in components carry no files; pass the content as a parameter instead")
	}
	if p == "" {
		return "", fmt.Errorf("the path is empty")
	}
	if !filepath.IsAbs(p) {
		p = filepath.Join(s.dir, p)
	}
	return filepath.Clean(p), nil
}

// read reads a regular file of at most maxReadFile bytes and records it.
func (s funcScope) read(p string) ([]byte, string, error) {
	abs, err := s.resolve(p)
	if err != nil {
		return nil, "", err
	}
	fi, err := os.Stat(abs)
	switch {
	case err != nil:
		return nil, abs, fmt.Errorf("cannot read %s: %v (relative paths are relative to the directory of %s)", abs, unwrapPathError(err), s.what)
	case !fi.Mode().IsRegular():
		return nil, abs, fmt.Errorf("%s is not a regular file", abs)
	case fi.Size() > maxReadFile:
		return nil, abs, fmt.Errorf("%s is larger than %d MiB; copy big files into the image with a file step instead", abs, maxReadFile>>20)
	}
	data, err := os.ReadFile(abs)
	if err != nil {
		return nil, abs, fmt.Errorf("cannot read %s: %v", abs, unwrapPathError(err))
	}
	if len(data) > maxReadFile {
		return nil, abs, fmt.Errorf("%s is larger than %d MiB", abs, maxReadFile>>20)
	}
	sum := sha256.Sum256(data)
	s.files[abs] = hex.EncodeToString(sum[:])
	return data, abs, nil
}

func unwrapPathError(err error) error {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err
	}
	return err
}

func (s funcScope) fileFunc(b64 bool) function.Function {
	return function.New(&function.Spec{
		Params: []function.Parameter{{Name: "path", Type: cty.String}},
		Type:   function.StaticReturnType(cty.String),
		Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
			data, abs, err := s.read(args[0].AsString())
			if err != nil {
				return cty.NilVal, function.NewArgError(0, err)
			}
			if b64 {
				return cty.StringVal(base64.StdEncoding.EncodeToString(data)), nil
			}
			if !utf8.Valid(data) {
				return cty.NilVal, function.NewArgErrorf(0, "%s is not UTF-8 text; use filebase64 for binary files", abs)
			}
			return cty.StringVal(string(data)), nil
		},
	})
}

func (s funcScope) fileExistsFunc() function.Function {
	return function.New(&function.Spec{
		Params: []function.Parameter{{Name: "path", Type: cty.String}},
		Type:   function.StaticReturnType(cty.Bool),
		Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
			abs, err := s.resolve(args[0].AsString())
			if err != nil {
				return cty.NilVal, function.NewArgError(0, err)
			}
			fi, err := os.Stat(abs)
			if err != nil {
				if os.IsNotExist(err) {
					s.files[abs] = FileAbsent
					return cty.False, nil
				}
				return cty.NilVal, function.NewArgErrorf(0, "cannot check %s: %v", abs, unwrapPathError(err))
			}
			if !fi.Mode().IsRegular() {
				return cty.NilVal, function.NewArgErrorf(0, "%s is not a regular file", abs)
			}
			if _, _, err := s.read(args[0].AsString()); err != nil { // record its content
				return cty.NilVal, function.NewArgError(0, err)
			}
			return cty.True, nil
		},
	})
}

// timestampFunc is Terraform's timestamp(): the current time in RFC 3339,
// UTC. A build that calls it is not reproducible (the manifest says so),
// unless SOURCE_DATE_EPOCH is set, whose time it returns instead.
func (s funcScope) timestampFunc() function.Function {
	return function.New(&function.Spec{
		Type: function.StaticReturnType(cty.String),
		Impl: func([]cty.Value, cty.Type) (cty.Value, error) {
			if s.log.epoch != nil {
				return cty.StringVal(s.log.epoch.Format(time.RFC3339)), nil
			}
			s.log.clockRead(s.what)
			return cty.StringVal(time.Now().UTC().Format(time.RFC3339)), nil
		},
	})
}

// templateFileFunc renders a file as an HCL template with the given
// variables and the same functions, templatefile itself excepted.
func (s funcScope) templateFileFunc(fns map[string]function.Function) function.Function {
	return function.New(&function.Spec{
		Params: []function.Parameter{
			{Name: "path", Type: cty.String},
			{Name: "vars", Type: cty.DynamicPseudoType},
		},
		Type: function.StaticReturnType(cty.DynamicPseudoType),
		Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
			vars := args[1]
			if vars.IsNull() || !(vars.Type().IsObjectType() || vars.Type().IsMapType()) {
				return cty.NilVal, function.NewArgErrorf(1, "vars must be an object or a map, such as { name = \"web\" }")
			}
			data, abs, err := s.read(args[0].AsString())
			if err != nil {
				return cty.NilVal, function.NewArgError(0, err)
			}
			expr, diags := hclsyntax.ParseTemplate(data, abs, hcl.InitialPos)
			if !diags.HasErrors() {
				diags = checkNumbers(expr)
			}
			if diags.HasErrors() {
				return cty.NilVal, function.NewArgErrorf(0, "%s", diagText(diags))
			}
			ctx := &hcl.EvalContext{Variables: map[string]cty.Value{}, Functions: map[string]function.Function{}}
			for k, v := range fns {
				if k != "templatefile" {
					ctx.Functions[k] = v
				}
			}
			for it := vars.ElementIterator(); it.Next(); {
				k, v := it.Element()
				name := k.AsString()
				if !hclsyntax.ValidIdentifier(name) {
					return cty.NilVal, function.NewArgErrorf(1, "%q cannot be a template variable: names are identifiers, such as greeting", name)
				}
				ctx.Variables[name] = v
			}
			v, diags := expr.Value(ctx)
			if diags.HasErrors() {
				return cty.NilVal, function.NewArgErrorf(0, "%s", diagText(diags))
			}
			return v, nil
		},
	})
}

// diagText is diags as one line each, "file:line,col: summary; detail".
func diagText(diags hcl.Diagnostics) string {
	var lines []string
	for _, d := range diags {
		if d.Severity == hcl.DiagError {
			lines = append(lines, d.Error())
		}
	}
	return strings.Join(lines, "\n")
}

// boundedFormat refuses a width or precision above 4 digits, which would
// make format allocate gigabytes.
func boundedFormat(f function.Function) function.Function {
	return withCheck(f, func(args []cty.Value) error {
		if len(args) == 0 || !args[0].IsKnown() || args[0].IsNull() || args[0].Type() != cty.String {
			return nil
		}
		if tooWide(args[0].AsString()) {
			return function.NewArgErrorf(0, "a width or precision of more than 4 digits is not supported")
		}
		return nil
	})
}

// tooWide says whether a format verb in f has a width or precision of more
// than 4 digits.
func tooWide(f string) bool {
	digits := func(i int) int {
		j := i
		for j < len(f) && f[j] >= '0' && f[j] <= '9' {
			j++
		}
		return j
	}
	for i := 0; i < len(f); i++ {
		if f[i] != '%' {
			continue
		}
		i++
		for i < len(f) && strings.IndexByte("+-# 0", f[i]) >= 0 {
			i++
		}
		if i < len(f) && f[i] == '[' {
			for i < len(f) && f[i] != ']' {
				i++
			}
			i++
		}
		j := digits(i)
		if j-i > 4 {
			return true
		}
		if i = j; i < len(f) && f[i] == '.' {
			if j = digits(i + 1); j-i-1 > 4 {
				return true
			}
			i = j
		}
	}
	return false
}

// withCheck wraps f so that check runs on the (unmarked) arguments first.
func withCheck(f function.Function, check func([]cty.Value) error) function.Function {
	spec := &function.Spec{
		Description: f.Description(),
		Params:      f.Params(),
		VarParam:    f.VarParam(),
		Type: func(args []cty.Value) (cty.Type, error) {
			return f.ReturnTypeForValues(args)
		},
		Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
			unmarked := make([]cty.Value, len(args))
			for i, a := range args {
				unmarked[i], _ = a.UnmarkDeep()
			}
			if err := check(unmarked); err != nil {
				return cty.NilVal, err
			}
			return f.Call(args)
		},
	}
	return function.New(spec)
}

var startsWithFunc = stringPredicate("prefix", strings.HasPrefix)
var endsWithFunc = stringPredicate("suffix", strings.HasSuffix)
var strContainsFunc = stringPredicate("substr", strings.Contains)

func stringPredicate(name string, f func(s, x string) bool) function.Function {
	return function.New(&function.Spec{
		Params: []function.Parameter{{Name: "str", Type: cty.String}, {Name: name, Type: cty.String}},
		Type:   function.StaticReturnType(cty.Bool),
		Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
			return cty.BoolVal(f(args[0].AsString(), args[1].AsString())), nil
		},
	})
}

// replaceFunc is Terraform's replace: a substring wrapped in slashes is a
// regular expression.
var replaceFunc = function.New(&function.Spec{
	Params: []function.Parameter{{Name: "str", Type: cty.String}, {Name: "substr", Type: cty.String}, {Name: "replace", Type: cty.String}},
	Type:   function.StaticReturnType(cty.String),
	Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
		str, substr, repl := args[0].AsString(), args[1].AsString(), args[2].AsString()
		if len(substr) > 1 && substr[0] == '/' && substr[len(substr)-1] == '/' {
			re, err := regexp.Compile(substr[1 : len(substr)-1])
			if err != nil {
				return cty.NilVal, function.NewArgErrorf(1, "invalid regular expression: %v", err)
			}
			return cty.StringVal(re.ReplaceAllString(str, repl)), nil
		}
		return cty.StringVal(strings.ReplaceAll(str, substr, repl)), nil
	},
})

// lengthFunc is Terraform's length: of a string (in characters), a
// collection or a structure.
var lengthFunc = function.New(&function.Spec{
	Params: []function.Parameter{{Name: "value", Type: cty.DynamicPseudoType, AllowDynamicType: true, AllowUnknown: true}},
	Type: func(args []cty.Value) (cty.Type, error) {
		t := args[0].Type()
		if t == cty.String || t == cty.DynamicPseudoType || t.IsCollectionType() || t.IsTupleType() || t.IsObjectType() {
			return cty.Number, nil
		}
		return cty.NilType, function.NewArgErrorf(0, "length takes a string, a list, a map or an object, not %s", t.FriendlyName())
	},
	Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
		v := args[0]
		t := v.Type()
		switch {
		case t.IsTupleType():
			return cty.NumberIntVal(int64(t.Length())), nil
		case t.IsObjectType():
			return cty.NumberIntVal(int64(len(t.AttributeTypes()))), nil
		case t == cty.String:
			return stdlib.Strlen(v)
		case t.IsCollectionType():
			return v.Length(), nil
		}
		return cty.UnknownVal(cty.Number), nil
	},
})

// coalesceFunc is Terraform's coalesce: the first argument that is
// neither null nor an empty string.
var coalesceFunc = function.New(&function.Spec{
	VarParam: &function.Parameter{Name: "vals", Type: cty.DynamicPseudoType, AllowUnknown: true, AllowDynamicType: true, AllowNull: true},
	Type: func(args []cty.Value) (cty.Type, error) {
		types := make([]cty.Type, len(args))
		for i, a := range args {
			types[i] = a.Type()
		}
		t, _ := convert.UnifyUnsafe(types)
		if t == cty.NilType {
			return cty.NilType, fmt.Errorf("all arguments must have the same type")
		}
		return t, nil
	},
	Impl: func(args []cty.Value, ret cty.Type) (cty.Value, error) {
		for _, a := range args {
			a, err := convert.Convert(a, ret)
			if err != nil {
				return cty.NilVal, err
			}
			if !a.IsKnown() {
				return cty.UnknownVal(ret), nil
			}
			if a.IsNull() || (ret == cty.String && a.RawEquals(cty.StringVal(""))) {
				continue
			}
			return a, nil
		}
		return cty.NilVal, fmt.Errorf("every argument is null or an empty string")
	},
})

var allTrueFunc = boolListFunc(true)
var anyTrueFunc = boolListFunc(false)

// boolListFunc is alltrue (all) or anytrue.
func boolListFunc(all bool) function.Function {
	return function.New(&function.Spec{
		Params: []function.Parameter{{Name: "list", Type: cty.List(cty.Bool)}},
		Type:   function.StaticReturnType(cty.Bool),
		Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
			for _, el := range args[0].AsValueSlice() {
				if !el.IsKnown() {
					return cty.UnknownVal(cty.Bool), nil
				}
				t := !el.IsNull() && el.True()
				if t != all {
					return cty.BoolVal(!all), nil
				}
			}
			return cty.BoolVal(all), nil
		},
	})
}

var sumFunc = function.New(&function.Spec{
	Params: []function.Parameter{{Name: "list", Type: cty.List(cty.Number)}},
	Type:   function.StaticReturnType(cty.Number),
	Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
		if args[0].LengthInt() == 0 {
			return cty.NilVal, function.NewArgErrorf(0, "sum needs at least one number")
		}
		total := cty.Zero
		for _, el := range args[0].AsValueSlice() {
			if el.IsNull() {
				return cty.NilVal, function.NewArgErrorf(0, "the list holds a null")
			}
			total = total.Add(el)
		}
		return total, nil
	},
})

// oneFunc is Terraform's one: null for an empty list, its element for a
// one-element list, an error otherwise.
var oneFunc = function.New(&function.Spec{
	Params: []function.Parameter{{Name: "list", Type: cty.List(cty.DynamicPseudoType)}},
	Type: func(args []cty.Value) (cty.Type, error) {
		return args[0].Type().ElementType(), nil
	},
	Impl: func(args []cty.Value, ret cty.Type) (cty.Value, error) {
		switch n := args[0].LengthInt(); n {
		case 0:
			return cty.NullVal(ret), nil
		case 1:
			return args[0].Index(cty.Zero), nil
		default:
			return cty.NilVal, function.NewArgErrorf(0, "the list has %d elements; one takes a list of at most one", n)
		}
	},
})

var base64EncodeFunc = stringFunc(func(s string) (string, error) {
	return base64.StdEncoding.EncodeToString([]byte(s)), nil
})

var base64DecodeFunc = stringFunc(func(s string) (string, error) {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return "", fmt.Errorf("not valid base64: %v", err)
	}
	if !utf8.Valid(b) {
		return "", fmt.Errorf("the decoded bytes are not UTF-8 text")
	}
	return string(b), nil
})

var urlEncodeFunc = stringFunc(func(s string) (string, error) { return url.QueryEscape(s), nil })

func hashFunc(h func() hash.Hash, enc func([]byte) string) function.Function {
	return stringFunc(func(s string) (string, error) {
		w := h()
		w.Write([]byte(s))
		return enc(w.Sum(nil)), nil
	})
}

func pathFunc(f func(string) string) function.Function {
	return stringFunc(func(s string) (string, error) { return f(s), nil })
}

// stringFunc makes a function of one string to a string.
func stringFunc(f func(string) (string, error)) function.Function {
	return function.New(&function.Spec{
		Params: []function.Parameter{{Name: "str", Type: cty.String}},
		Type:   function.StaticReturnType(cty.String),
		Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
			out, err := f(args[0].AsString())
			if err != nil {
				return cty.NilVal, function.NewArgError(0, err)
			}
			return cty.StringVal(out), nil
		},
	})
}
