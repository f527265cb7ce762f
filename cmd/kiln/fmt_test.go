package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kiln-build/kiln/internal/testutil"
)

// Every example recipe, example component and built-in component is in
// the canonical layout.
func TestFmtCheckExamples(t *testing.T) {
	code, out, errOut := runKiln(t, "fmt", "-check", "-recursive", "../../examples", "../../components/library")
	require.Equal(t, exitOK, code, "not formatted:\n%s%s", out, errOut)
	require.Empty(t, out)
}

// A misformatted copy: -check exits 3 and names it without writing; -diff
// prints a unified diff that patch(1) applies to give the formatted file;
// kiln fmt rewrites it, after which -check passes. A file with a syntax
// error is reported (exit 2) and left alone.
func TestFmtRewritesAndChecks(t *testing.T) {
	testutil.Require(t, "patch")
	dir := t.TempDir()
	example, err := os.ReadFile("../../examples/web-server.hcl")
	require.NoError(t, err)
	messy := strings.NewReplacer("  version = ", "  version=", "    suite = ", "\tsuite    =   ").Replace(string(example))
	messy = strings.TrimSuffix(messy, "\n") // no newline at the end
	require.NotEqual(t, string(example), messy)
	path := filepath.Join(dir, "web.hcl")
	require.NoError(t, os.WriteFile(path, []byte(messy), 0o640))

	code, out, _ := runKiln(t, "fmt", "-check", dir)
	require.Equal(t, exitFmtCheck, code)
	require.Equal(t, path+"\n", out)
	data, _ := os.ReadFile(path)
	require.Equal(t, messy, string(data), "-check writes nothing")

	code, out, _ = runKiln(t, "fmt", "-check", "-diff", path)
	require.Equal(t, exitFmtCheck, code)
	diff := strings.TrimPrefix(out, path+"\n")
	require.Contains(t, diff, "--- old/"+path+"\n+++ new/"+path+"\n@@ ")
	patched := filepath.Join(dir, "patched.hcl")
	require.NoError(t, os.WriteFile(patched, []byte(messy), 0o644))
	cmd := exec.Command("patch", "--quiet", patched)
	cmd.Stdin = strings.NewReader(diff)
	pout, err := cmd.CombinedOutput()
	require.NoError(t, err, "patch: %s\n%s", pout, diff)

	code, out, _ = runKiln(t, "fmt", path)
	require.Equal(t, exitOK, code)
	require.Equal(t, path+"\n", out)
	formatted, _ := os.ReadFile(path)
	require.Equal(t, string(example), string(formatted), "formatting the messy copy gives the canonical example back")
	viaPatch, _ := os.ReadFile(patched)
	require.Equal(t, string(formatted), string(viaPatch), "the diff is exactly the change")
	fi, _ := os.Stat(path)
	require.Equal(t, os.FileMode(0o640), fi.Mode().Perm(), "the file keeps its mode")

	code, out, _ = runKiln(t, "fmt", "-check", path)
	require.Equal(t, exitOK, code)
	require.Empty(t, out)

	broken := filepath.Join(dir, "sub", "broken.hcl")
	require.NoError(t, os.MkdirAll(filepath.Dir(broken), 0o755))
	bad := "image \"x\" {\n  disk { size = \"1GiB\" table = \"gpt\" }\n}\n"
	require.NoError(t, os.WriteFile(broken, []byte(bad), 0o644))
	code, _, _ = runKiln(t, "fmt", "-check", dir)
	require.Equal(t, exitOK, code, "without -recursive, sub/ is not looked at")
	code, _, errOut := runKiln(t, "fmt", "-recursive", dir)
	require.Equal(t, exitUsage, code)
	require.Contains(t, errOut, broken+":2:24: error: Invalid single-argument block definition")
	data, _ = os.ReadFile(broken)
	require.Equal(t, bad, string(data))
}

// kiln fmt - formats standard input to standard output.
func TestFmtStdin(t *testing.T) {
	old := fmtStdin
	defer func() { fmtStdin = old }()
	fmtStdin = strings.NewReader("a=1\nbbb = \"x\"\n")
	code, out, _ := runKiln(t, "fmt", "-")
	require.Equal(t, exitOK, code)
	require.Equal(t, "a   = 1\nbbb = \"x\"\n", out)
}

// The unified diff of a change at each end and in the middle, with the
// hunk headers diff -u writes.
func TestUnifiedDiff(t *testing.T) {
	a := "1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n"
	b := "one\n2\n3\n4\n5\n6\n7\n8\n9\nten\n"
	require.Equal(t, "--- old/f\n+++ new/f\n@@ -1,4 +1,4 @@\n-1\n+one\n 2\n 3\n 4\n@@ -7,4 +7,4 @@\n 7\n 8\n 9\n-10\n+ten\n", unifiedDiff("f", a, b))
	require.Equal(t, "--- old/f\n+++ new/f\n@@ -1 +1,2 @@\n x\n+y\n", unifiedDiff("f", "x\n", "x\ny\n"))
	require.Equal(t, "", unifiedDiff("f", a, a))
}
