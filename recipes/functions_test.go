package recipes

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// The functions Terraform and Packer users know, evaluated in a recipe's
// locals: each local's value is asserted.
func TestFunctions(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "motd.txt", "built by kiln\n")
	writeFile(t, dir, "hosts.tpl", "%{ for h in hosts ~}\n${h} ${upper(domain)}\n%{ endfor ~}\n")
	src := `variable "suite" {
  default = "trixie"
}

locals {
  formatted   = format("%s-%03d", var.suite, 7)
  formatdate  = formatdate("YYYY-MM-DD", "2026-12-01T10:00:00Z")
  split       = split(",", "a,b,c")
  joined      = join("-", ["a", "b"])
  concat      = concat(["a"], ["b", "c"])
  length_list = length(["a", "b"])
  length_str  = length("héllo")
  lookup      = lookup({ a = "x" }, "b", "default")
  merge       = merge({ a = 1 }, { b = 2 })
  trimspace   = trimspace("  x  ")
  regex_repl  = regex_replace("web-01", "[0-9]+", "N")
  replace     = replace("a.b.c", ".", "/")
  replace_re  = replace("web-01", "/[0-9]/", "x")
  jsonencode  = jsonencode({ a = [1, "b"] })
  yamlencode  = yamlencode({ a = "b" })
  base64      = base64encode("kiln")
  unbase64    = base64decode("a2lsbg==")
  sha256      = sha256("kiln")
  md5         = md5("")
  file        = file("motd.txt")
  template    = templatefile("hosts.tpl", { hosts = ["a", "b"], domain = "lan" })
  try         = try(jsondecode("{"), "fallback")
  can         = can(regex("^[a-z]+$", "Web"))
  startswith  = startswith(var.suite, "tri")
  upper_lower = "${upper("a")}${lower("B")}"
  numbers     = [max(1, 5, 3), min(2, 4), ceil(1.2), floor(1.8), abs(-3), pow(2, 10), parseint("ff", 16)]
  collections = [distinct(["a", "a", "b"]), sort(["b", "a"]), reverse(["a", "b"]), compact(["a", "", "b"]), flatten([["a"], ["b"]])]
  keys        = keys({ b = 1, a = 2 })
  contains    = contains(["a"], "a")
  coalesce    = coalesce("", "x")
  element     = element(["a", "b"], 3)
  sum         = sum([1, 2, 3])
  alltrue     = alltrue([true, true])
  anytrue     = anytrue([false, true])
  one         = one(["only"])
  zipmap      = zipmap(["a"], [1])
  conversions = [tostring(1), tonumber("2"), tobool("true")]
  fileexists  = [fileexists("motd.txt"), fileexists("gone.txt")]
  basename    = basename("/a/b/c.txt")
  timeadd     = timeadd("2026-12-01T10:00:00Z", "1h")
  urlencode   = urlencode("a b&c")
  substr      = substr("kiln-build", 0, 4)
  title       = title("kiln")
  trimprefix  = trimprefix("v1.2.3", "v")
  range       = range(3)
  chunklist   = chunklist(["a", "b", "c"], 2)
  indent      = indent(2, "a\nb")
}

image "functions" {
  version = "1.0.0"
  base "debian" {
    suite = var.suite
  }
}
`
	recipe := filepath.Join(dir, "r.hcl")
	writeFile(t, dir, "r.hcl", src)
	r, _, diags := Load(recipe, LoadOptions{Library: testLibrary})
	require.Empty(t, diags, "%s", diags)
	got := map[string]any{}
	for _, l := range r.Locals {
		got[l.Name] = l.Value
	}
	sum := sha256.Sum256([]byte("kiln"))
	want := map[string]any{
		"formatted":   "trixie-007",
		"formatdate":  "2026-12-01",
		"split":       []any{"a", "b", "c"},
		"joined":      "a-b",
		"concat":      []any{"a", "b", "c"},
		"length_list": int64(2),
		"length_str":  int64(5),
		"lookup":      "default",
		"merge":       map[string]any{"a": int64(1), "b": int64(2)},
		"trimspace":   "x",
		"regex_repl":  "web-N",
		"replace":     "a/b/c",
		"replace_re":  "web-xx",
		"jsonencode":  `{"a":[1,"b"]}`,
		"yamlencode":  "\"a\": \"b\"\n",
		"base64":      "a2lsbg==",
		"unbase64":    "kiln",
		"sha256":      hex.EncodeToString(sum[:]),
		"md5":         "d41d8cd98f00b204e9800998ecf8427e",
		"file":        "built by kiln\n",
		"template":    "a LAN\nb LAN\n",
		"try":         "fallback",
		"can":         false,
		"startswith":  true,
		"upper_lower": "Ab",
		"numbers":     []any{int64(5), int64(2), int64(2), int64(1), int64(3), int64(1024), int64(255)},
		"collections": []any{[]any{"a", "b"}, []any{"a", "b"}, []any{"b", "a"}, []any{"a", "b"}, []any{"a", "b"}},
		"keys":        []any{"a", "b"},
		"contains":    true,
		"coalesce":    "x",
		"element":     "b",
		"sum":         int64(6),
		"alltrue":     true,
		"anytrue":     true,
		"one":         "only",
		"zipmap":      map[string]any{"a": int64(1)},
		"conversions": []any{"1", int64(2), true},
		"fileexists":  []any{true, false},
		"basename":    "c.txt",
		"timeadd":     "2026-12-01T11:00:00Z",
		"urlencode":   "a+b%26c",
		"substr":      "kiln",
		"title":       "Kiln",
		"trimprefix":  "1.2.3",
		"range":       []any{int64(0), int64(1), int64(2)},
		"chunklist":   []any{[]any{"a", "b"}, []any{"c"}},
		"indent":      "a\n  b",
	}
	require.Equal(t, want, got)
	require.Empty(t, r.NotReproducible)

	// What the expressions read is recorded, with its digest; a file
	// fileexists found absent is recorded as such.
	motd := sha256.Sum256([]byte("built by kiln\n"))
	require.Equal(t, hex.EncodeToString(motd[:]), r.ReadFiles[filepath.Join(dir, "motd.txt")])
	require.Contains(t, r.ReadFiles, filepath.Join(dir, "hosts.tpl"))
	require.Equal(t, FileAbsent, r.ReadFiles[filepath.Join(dir, "gone.txt")])
	require.Len(t, r.ReadFiles, 3)

	// Every function listed is callable in a recipe.
	require.Contains(t, FunctionNames(), "templatefile")
	require.Contains(t, FunctionNames(), "yamlencode")
	require.Len(t, FunctionNames(), len(pureFunctions)+len(scopeFunctionNames))
}

// timestamp() makes a build not reproducible, and the recipe says so;
// with SOURCE_DATE_EPOCH it returns that time and the build stays
// reproducible.
func TestTimestamp(t *testing.T) {
	src := []byte(`image "ts" {
  version     = "1.0.0"
  description = "built ${timestamp()}"
  base "debian" {
    suite = "trixie"
  }
}
`)
	before := time.Now().UTC().Truncate(time.Second)
	r, _, diags := Parse("ts.hcl", src, LoadOptions{Library: testLibrary})
	require.Empty(t, diags)
	stamp, err := time.Parse(time.RFC3339, strings.TrimPrefix(r.Image.Description, "built "))
	require.NoError(t, err)
	require.False(t, stamp.Before(before))
	require.Equal(t, []string{"timestamp() in ts.hcl"}, r.NotReproducible)

	r, _, diags = Parse("ts.hcl", src, LoadOptions{Library: testLibrary, Env: []string{"SOURCE_DATE_EPOCH=1767225600"}})
	require.Empty(t, diags)
	require.Equal(t, "built 2026-01-01T00:00:00Z", r.Image.Description)
	require.Empty(t, r.NotReproducible)
}

// file and templatefile resolve against the recipe's directory, refuse
// what is not a regular text file, and report the path they tried.
func TestFileFunctionErrors(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.Mkdir(filepath.Join(dir, "sub"), 0o755))
	writeFile(t, dir, "bin", "\xff\xfe")
	writeFile(t, dir, "bad.tpl", "${nosuch}")
	for expr, want := range map[string]string{
		`file("sub")`:                         "is not a regular file",
		`file("bin")`:                         "is not UTF-8 text; use filebase64",
		`file("")`:                            "the path is empty",
		`file("/dev/zero")`:                   "is not a regular file",
		`templatefile("bad.tpl", {})`:         "bad.tpl:1,3-9: Unknown variable",
		`templatefile("bad.tpl", "x")`:        "vars must be an object or a map",
		`templatefile("bad.tpl", {"a b"= 1})`: `"a b" cannot be a template variable`,
		`format("%99999d", 1)`:                "more than 4 digits",
	} {
		src := `image "f" {
  version     = "1.0.0"
  description = ` + expr + `
  base "debian" {
    suite = "trixie"
  }
}
`
		_, _, diags := Parse(filepath.Join(dir, "r.hcl"), []byte(src), LoadOptions{Library: testLibrary})
		require.Len(t, diags, 1, expr)
		require.Equal(t, 3, diags[0].Subject.Start.Line, expr)
		require.Contains(t, diags[0].Detail, want, expr)
	}
	require.Equal(t, "1234567", mustDescribe(t, `format("%s", "1234567")`), "digits outside a verb are fine")
}

func mustDescribe(t *testing.T, expr string) string {
	t.Helper()
	r, _, diags := Parse("r.hcl", []byte(`image "f" {
  version     = "1.0.0"
  description = `+expr+`
  base "debian" {
    suite = "trixie"
  }
}
`), LoadOptions{Library: testLibrary})
	require.Empty(t, diags)
	return r.Image.Description
}

// Component files have the same functions; what their expressions read is
// in the component's files digest, so that a change is noticed.
func TestComponentFunctions(t *testing.T) {
	dir := t.TempDir()
	comps := filepath.Join(dir, "components")
	writeComponent(t, comps, "motd", "1.0.0", `  parameter "who" {
    default = "kiln"
  }
  build "file" "motd" {
    destination = "/etc/motd"
    content     = "${trimspace(file("motd.txt"))} by ${upper(param.who)} ${join(",", [for s in split(" ", "a b") : s])}\n"
  }
`)
	writeFile(t, comps, "motd.txt", "built\n")
	r, diags, _ := recipeWith(t, dir, "  component \"motd\" {\n    version = \"1.x.x\"\n  }\n")
	require.Empty(t, diags, "%s", diags)
	require.Equal(t, "built by KILN a,b\n", string(r.Image.Build[0].Action.File.Content))
	first := r.Image.Components[0].FilesSHA256
	require.NotEmpty(t, first)
	require.Empty(t, r.ReadFiles, "a component's reads are in its own digest")

	writeFile(t, comps, "motd.txt", "rebuilt\n")
	r, diags, _ = recipeWith(t, dir, "  component \"motd\" {\n    version = \"1.x.x\"\n  }\n")
	require.Empty(t, diags)
	require.NotEqual(t, first, r.Image.Components[0].FilesSHA256)

	// A built-in component has no directory: file() says so.
	lib := t.TempDir()
	writeComponent(t, lib, "bad", "1.0.0", `  build "file" "f" {
    destination = "/etc/x"
    content     = file("x")
  }
`)
	_, _, diags = Parse("r.hcl", []byte(`image "b" {
  version = "1.0.0"
  base "debian" {
    suite = "trixie"
  }
  component "bad" {
    version = "1.0.0"
  }
}
`), LoadOptions{Library: os.DirFS(lib)})
	require.Len(t, diags, 1)
	require.Contains(t, diags[0].Detail, "built-in components carry no files")
}

// A mistyped param. in a component file names the closest parameter.
func TestUndeclaredParameterSuggests(t *testing.T) {
	dir := t.TempDir()
	writeComponent(t, filepath.Join(dir, "components"), "web", "1.0.0", `  parameter "port" {
    type    = number
    default = 80
  }
  build "shell" "listen" {
    inline = ["echo ${param.prot}"]
  }
`)
	_, diags, _ := recipeWith(t, dir, "  component \"web\" {\n    version = \"1.x.x\"\n  }\n")
	require.Len(t, diags, 1)
	require.Equal(t, "Reference to undeclared parameter", diags[0].Summary)
	require.Contains(t, diags[0].Detail, `Did you mean "port"?`)
	require.Equal(t, 8, diags[0].Subject.Start.Line)
}
