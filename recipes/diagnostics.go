package recipes

import (
	"bytes"
	"fmt"
	"io"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/hashicorp/hcl/v2"
)

// Diagnostics is the list of problems Load and Parse report. It is HCL's own
// type, the only HCL type this package exposes: every diagnostic has a
// Severity, a Summary, a Detail that says what to do, and (for those Kiln
// creates) a Subject range.
type Diagnostics = hcl.Diagnostics

// Files holds the text of every source Load or Parse read, so that
// diagnostics can quote the offending line: the recipe, the -var-file files,
// and the text of each -var and KILN_VAR_ value (under synthetic names such
// as "<value for var.suite>").
type Files struct {
	main string
	src  map[string][]byte
}

func newFiles(main string) *Files { return &Files{main: main, src: map[string][]byte{}} }

// Source returns the text stored under filename.
func (f *Files) Source(filename string) ([]byte, bool) {
	if f == nil {
		return nil, false
	}
	b, ok := f.src[filename]
	return b, ok
}

// Names lists the stored sources, sorted.
func (f *Files) Names() []string {
	if f == nil {
		return nil
	}
	names := make([]string, 0, len(f.src))
	for n := range f.src {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// add stores src under name and returns the name it was stored under: a
// synthetic name ("<...>") already holding other text gets a " #N" suffix.
func (f *Files) add(name string, src []byte) string {
	if old, ok := f.src[name]; ok && !bytes.Equal(old, src) && strings.HasSuffix(name, ">") {
		for i := 2; ; i++ {
			n := fmt.Sprintf("%s #%d>", strings.TrimSuffix(name, ">"), i)
			if old, ok := f.src[n]; !ok || bytes.Equal(old, src) {
				name = n
				break
			}
		}
	}
	f.src[name] = src
	return name
}

// errorDiag is the constructor for every error Kiln itself reports: a
// summary, a detail that says what to do, and the range it concerns.
func errorDiag(subject hcl.Range, summary, detail string) *hcl.Diagnostic {
	return &hcl.Diagnostic{Severity: hcl.DiagError, Summary: summary, Detail: detail, Subject: subject.Ptr()}
}

// syntheticRange covers all of src in a source that is not a file, such as
// the text of a -var option.
func syntheticRange(filename string, src string) hcl.Range {
	return hcl.Range{
		Filename: filename,
		Start:    hcl.InitialPos,
		End:      hcl.Pos{Line: 1, Column: 1 + utf8.RuneCountInString(src), Byte: len(src)},
	}
}

// fileStart is an empty range at the start of filename.
func fileStart(filename string) hcl.Range {
	return hcl.Range{Filename: filename, Start: hcl.InitialPos, End: hcl.InitialPos}
}

// at formats r's start as file:line, for details that refer to another place.
func at(r hcl.Range) string { return fmt.Sprintf("%s:%d", r.Filename, r.Start.Line) }

const (
	ansiReset  = "\x1b[0m"
	ansiBold   = "\x1b[1m"
	ansiRed    = "\x1b[1;31m"
	ansiYellow = "\x1b[1;33m"
)

// WriteDiagnostics renders every diagnostic in diags, errors and warnings,
// in order, each as
//
//	file:line:col: error: summary
//	    12 |   sise = "2GiB"
//	       |   ^^^^
//	  detail
//
// and then a count such as "2 errors, 1 warning". A diagnostic without a
// Subject is rendered as "file: error: summary". files may be nil, in which
// case no source lines are quoted. With color, severities and markers are
// colored with ANSI escapes.
func WriteDiagnostics(w io.Writer, files *Files, diags hcl.Diagnostics, color bool) {
	var errs, warns int
	for _, d := range diags {
		if d == nil {
			continue
		}
		if d.Severity == hcl.DiagWarning {
			warns++
		} else {
			errs++
		}
		writeDiagnostic(w, files, d, color)
	}
	if errs+warns == 0 {
		return
	}
	fmt.Fprintf(w, "%s, %s\n", plural(errs, "error"), plural(warns, "warning"))
}

func writeDiagnostic(w io.Writer, files *Files, d *hcl.Diagnostic, color bool) {
	sev, sevColor := "error", ansiRed
	if d.Severity == hcl.DiagWarning {
		sev, sevColor = "warning", ansiYellow
	}
	paint := func(code, s string) string {
		if !color {
			return s
		}
		return code + s + ansiReset
	}
	var where string
	switch {
	case d.Subject != nil:
		where = fmt.Sprintf("%s:%d:%d", d.Subject.Filename, d.Subject.Start.Line, d.Subject.Start.Column)
	case files != nil && files.main != "":
		where = files.main
	}
	if where != "" {
		where = paint(ansiBold, where) + ": "
	}
	fmt.Fprintf(w, "%s%s: %s\n", where, paint(sevColor, sev), paint(ansiBold, d.Summary))
	if d.Subject != nil {
		if src, ok := files.Source(d.Subject.Filename); ok {
			if line, prefix, marker, ok := snippet(src, *d.Subject); ok {
				num := fmt.Sprintf("%6d", d.Subject.Start.Line)
				pad := strings.Repeat(" ", len(num))
				fmt.Fprintf(w, "%s | %s\n", num, line)
				fmt.Fprintf(w, "%s | %s%s\n", pad, prefix, paint(sevColor, marker))
			}
		}
	}
	if detail := strings.TrimSpace(d.Detail); detail != "" {
		for _, l := range strings.Split(detail, "\n") {
			fmt.Fprintf(w, "  %s\n", strings.TrimRight(l, " \t\r"))
		}
	}
	fmt.Fprintln(w)
}

// snippet returns the line r starts on, the whitespace that brings a marker
// under r's start (tabs kept, so it lines up), and the marker (^ for each
// character of r on that line, at least one).
func snippet(src []byte, r hcl.Range) (line, prefix, marker string, ok bool) {
	if r.Start.Line < 1 {
		return "", "", "", false
	}
	// Find the line by counting newlines: Line is authoritative.
	start, n := 0, 1
	for n < r.Start.Line {
		i := bytes.IndexByte(src[start:], '\n')
		if i < 0 {
			return "", "", "", false
		}
		start += i + 1
		n++
	}
	end := len(src)
	if i := bytes.IndexByte(src[start:], '\n'); i >= 0 {
		end = start + i
	}
	text := strings.TrimRight(string(src[start:end]), "\r")
	// Byte offsets are exact when they agree with the line; otherwise fall
	// back to the column, which counts characters.
	from := -1
	if r.Start.Byte >= start && r.Start.Byte <= start+len(text) {
		from = r.Start.Byte - start
	} else {
		from = 0
		for col := 1; col < r.Start.Column && from < len(text); col++ {
			_, size := utf8.DecodeRuneInString(text[from:])
			from += size
		}
	}
	to := len(text)
	if r.End.Line == r.Start.Line {
		switch {
		case r.End.Byte >= start+from && r.End.Byte <= start+len(text):
			to = r.End.Byte - start
		case r.End.Column > r.Start.Column:
			to = from
			for col := r.Start.Column; col < r.End.Column && to < len(text); col++ {
				_, size := utf8.DecodeRuneInString(text[to:])
				to += size
			}
		default:
			to = from
		}
	}
	var pre strings.Builder
	for _, c := range text[:from] {
		if c == '\t' {
			pre.WriteByte('\t')
		} else {
			pre.WriteByte(' ')
		}
	}
	width := utf8.RuneCountInString(text[from:to])
	if width < 1 {
		width = 1
	}
	return text, pre.String(), strings.Repeat("^", width), true
}

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}

// JSONDiagnostic is one diagnostic as `kiln validate --json` prints it.
// File is "" and Line and Column are 0 when the diagnostic has no Subject.
type JSONDiagnostic struct {
	Severity string `json:"severity"` // "error" or "warning"
	Summary  string `json:"summary"`
	Detail   string `json:"detail"`
	File     string `json:"file"`
	Line     int    `json:"line"`
	Column   int    `json:"column"`
}

// DiagnosticsJSON converts diags for JSON output; never nil.
func DiagnosticsJSON(diags hcl.Diagnostics) []JSONDiagnostic {
	out := []JSONDiagnostic{}
	for _, d := range diags {
		if d == nil {
			continue
		}
		j := JSONDiagnostic{Severity: "error", Summary: d.Summary, Detail: d.Detail}
		if d.Severity == hcl.DiagWarning {
			j.Severity = "warning"
		}
		if d.Subject != nil {
			j.File, j.Line, j.Column = d.Subject.Filename, d.Subject.Start.Line, d.Subject.Start.Column
		}
		out = append(out, j)
	}
	return out
}
