package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/kiln-build/kiln/internal/atomicfile"
	"github.com/kiln-build/kiln/recipes"
)

const fmtUsage = `kiln fmt [-check] [-diff] [-recursive] [-write=false] FILE|DIR|- ...

Rewrites recipes, component files, pipelines files and variables files
(*.hcl) in the canonical layout, as packer fmt and terraform fmt do: one
argument per line, aligned =, two-space indentation. It prints the name of
each file it changed. A DIR means the *.hcl files in it (and, with
-recursive, in its subdirectories); - reads standard input and writes the
result to standard output. A file with syntax errors is left alone and its
errors are reported.

Exit codes: 0 every file is (now) formatted; 3 with -check, some file is not
formatted (nothing is written); 2 a file has syntax errors, or bad usage.`

// fmtStdin is what kiln fmt - reads; tests replace it.
var fmtStdin io.Reader = os.Stdin

// exitFmtCheck is kiln fmt -check's code for "some file would change", as
// packer fmt's.
const exitFmtCheck = 3

func cmdFmt(_ context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("fmt", fmtUsage, stderr)
	check := fs.Bool("check", false, "write nothing; exit 3 if any file is not formatted")
	diff := fs.Bool("diff", false, "print the changes as a unified diff")
	recursive := fs.Bool("recursive", false, "also format the subdirectories of each DIR")
	write := fs.Bool("write", true, "rewrite the files (-check implies -write=false)")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return flagError(err)
	}
	if len(pos) == 0 {
		fmt.Fprintln(stderr, "kiln fmt: expected at least one FILE, DIR or -")
		fs.Usage()
		return exitUsage
	}
	f := &formatter{check: *check, diff: *diff, write: *write && !*check, stdout: stdout, stderr: stderr}
	for _, p := range pos {
		if p == "-" {
			src, err := io.ReadAll(fmtStdin)
			if err != nil {
				fmt.Fprintf(stderr, "kiln fmt: reading standard input: %v\n", err)
				return exitUsage
			}
			f.stdin(src)
			continue
		}
		paths, err := hclFiles(p, *recursive)
		if err != nil {
			fmt.Fprintf(stderr, "kiln fmt: %v\n", err)
			f.failed = true
			continue
		}
		for _, path := range paths {
			f.file(path)
		}
	}
	switch {
	case f.failed:
		return exitUsage
	case f.check && f.changed > 0:
		return exitFmtCheck
	}
	return exitOK
}

// formatter formats files one by one and counts what it found.
type formatter struct {
	check, diff, write bool
	stdout, stderr     io.Writer
	changed            int
	failed             bool
}

// format returns src formatted, or nil after reporting its syntax errors.
func (f *formatter) format(name string, src []byte) []byte {
	out, files, diags := recipes.Format(name, src)
	if diags.HasErrors() {
		recipes.WriteDiagnostics(f.stderr, files, diags, isTerminal(f.stderr))
		f.failed = true
		return nil
	}
	return out
}

func (f *formatter) stdin(src []byte) {
	out := f.format("<stdin>", src)
	if out == nil {
		return
	}
	if !bytes.Equal(src, out) {
		f.changed++
	}
	switch {
	case f.diff:
		io.WriteString(f.stdout, unifiedDiff("<stdin>", string(src), string(out)))
	case !f.check:
		f.stdout.Write(out)
	}
}

func (f *formatter) file(path string) {
	src, err := os.ReadFile(path)
	if err != nil {
		fmt.Fprintf(f.stderr, "kiln fmt: %v\n", err)
		f.failed = true
		return
	}
	out := f.format(path, src)
	if out == nil || bytes.Equal(src, out) {
		return
	}
	f.changed++
	fmt.Fprintln(f.stdout, path)
	if f.diff {
		io.WriteString(f.stdout, unifiedDiff(path, string(src), string(out)))
	}
	if !f.write {
		return
	}
	mode := os.FileMode(0o644)
	if fi, err := os.Stat(path); err == nil {
		mode = fi.Mode().Perm()
	}
	if err := atomicfile.Write(path, out, mode); err != nil {
		fmt.Fprintf(f.stderr, "kiln fmt: %v\n", err)
		f.failed = true
	}
}

// hclFiles is p itself when it is a file, else the *.hcl files in the
// directory p (and its subdirectories, skipping hidden ones, with
// recursive), sorted.
func hclFiles(p string, recursive bool) ([]string, error) {
	fi, err := os.Stat(p)
	if err != nil {
		return nil, err
	}
	if !fi.IsDir() {
		return []string{p}, nil
	}
	var out []string
	err = filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if path != p && (!recursive || strings.HasPrefix(d.Name(), ".")) {
				return filepath.SkipDir
			}
			return nil
		}
		if strings.HasSuffix(d.Name(), ".hcl") && d.Type().IsRegular() {
			out = append(out, path)
		}
		return nil
	})
	sort.Strings(out)
	return out, err
}
