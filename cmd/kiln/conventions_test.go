package main

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/kiln-build/kiln/internal/testutil"
	"github.com/stretchr/testify/require"
)

// Every command parses its flags before it does anything, so --help under
// the flag probe returns at once with the flag set it parses: completion
// and the man page read exactly these.
func TestEveryCommandParsesFlagsFirst(t *testing.T) {
	for _, c := range commands() {
		if c.name == "images" || c.name == "cache" {
			for _, sub := range subcommandsOf(c.name) {
				p := &flagProbe{}
				require.Equal(t, exitOK, sub.run(t.Context(), []string{"--help"}, io.Discard, p), "%s %s", c.name, sub.name)
				require.Len(t, p.sets, 1, "%s %s makes one flag set", c.name, sub.name)
			}
			continue
		}
		p := &flagProbe{}
		require.Equal(t, exitOK, c.run(t.Context(), []string{"--help"}, io.Discard, p), c.name)
		require.Len(t, p.sets, 1, "%s makes one flag set", c.name)
	}
	var names []string
	for _, f := range commandFlags(command{run: cmdRun}) {
		names = append(names, f.Name)
	}
	require.Equal(t, []string{"cloud-init", "firmware", "images", "secure-boot", "secure-boot-vars", "ssh", "ssh-port", "tcg-cpu", "timeout", "tpm", "vcpus"}, names)
}

func writeCompletion(t *testing.T, shell string) string {
	t.Helper()
	code, out, errOut := runKiln(t, "completion", shell)
	require.Equal(t, 0, code, errOut)
	p := filepath.Join(t.TempDir(), "kiln."+shell)
	require.NoError(t, os.WriteFile(p, []byte(out), 0o644))
	return p
}

// bash accepts the script, and it completes commands, subcommands and
// every flag of each command from the table.
func TestBashCompletion(t *testing.T) {
	testutil.Require(t, "bash")
	script := writeCompletion(t, "bash")
	out, err := exec.Command("bash", "-n", script).CombinedOutput()
	require.NoError(t, err, "bash -n: %s", out)

	complete := func(words ...string) []string {
		t.Helper()
		// COMP_WORDS as bash fills it, the word being completed last.
		prog := `source "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$((${#COMP_WORDS[@]}-1)); _kiln; printf '%s\n' "${COMPREPLY[@]}"`
		out, err := exec.Command("bash", append([]string{"-c", prog, "bash", script}, words...)...).CombinedOutput()
		require.NoError(t, err, string(out))
		return strings.Fields(string(out))
	}
	require.Equal(t, []string{"build"}, complete("kiln", "bu"))
	require.Equal(t, []string{"schedule", "ssh"}, complete("kiln", "s"))
	require.Equal(t, []string{"--on-error"}, complete("kiln", "build", "--on"))
	require.Equal(t, []string{"-var", "-var-file"}, complete("kiln", "build", "-va"), "Packer-style single dash")
	require.Equal(t, []string{"--ssh", "--ssh-port"}, complete("kiln", "run", "--ss"))
	require.Equal(t, []string{"list"}, complete("kiln", "images", "li"))
	require.Equal(t, []string{"--include-deprecated"}, complete("kiln", "images", "show", "--in"))
	require.Equal(t, []string{"fish"}, complete("kiln", "completion", "f"))
	require.Equal(t, []string{"run"}, complete("kiln", "help", "ru"))
	require.Empty(t, complete("kiln", "build", "rec"), "arguments fall back to file names (complete -o default)")
	// Every command and every flag of the table is offered.
	all := complete("kiln", "")
	for _, c := range commands() {
		require.Contains(t, all, c.name)
		got := complete("kiln", c.name, "-")
		if len(subcommandsOf(c.name)) > 0 {
			continue
		}
		for _, f := range commandFlags(c) {
			require.Contains(t, got, flagSpec{name: f.Name}.dashed(), "kiln %s", c.name)
		}
	}
}

func TestZshAndFishCompletion(t *testing.T) {
	testutil.Require(t, "zsh", "fish")
	out, err := exec.Command("zsh", "-n", writeCompletion(t, "zsh")).CombinedOutput()
	require.NoError(t, err, "zsh -n: %s", out)

	script := writeCompletion(t, "fish")
	out, err = exec.Command("fish", "--no-execute", script).CombinedOutput()
	require.NoError(t, err, "fish --no-execute: %s", out)
	complete := func(line string) string {
		out, err := exec.Command("fish", "-c", "source $argv[1]; complete -C $argv[2]", script, line).CombinedOutput()
		require.NoError(t, err, string(out))
		return string(out)
	}
	require.Regexp(t, `(?m)^build\tBuild, boot-test`, complete("kiln bu"))
	require.Regexp(t, `(?m)^--cloud-init\t`, complete("kiln run --cl"))
	require.Regexp(t, `(?m)^prune\t`, complete("kiln images p"))
	require.Regexp(t, `(?m)^--dry-run\t`, complete("kiln images prune --d"))
	require.Regexp(t, `(?m)^-o\toutput file`, complete("kiln convert -"))
}

func TestCompletionUsage(t *testing.T) {
	code, _, errOut := runKiln(t, "completion", "bahs")
	require.Equal(t, 2, code)
	require.Contains(t, errOut, `unknown shell "bahs"; did you mean "bash"?`)
	code, _, _ = runKiln(t, "completion")
	require.Equal(t, 2, code)
}

// man renders the page without a warning, and it holds every command, its
// usage and its flags.
func TestManPageRenders(t *testing.T) {
	testutil.Require(t, "man", "groff")
	code, page, errOut := runKiln(t, "man")
	require.Equal(t, 0, code, errOut)
	path := filepath.Join(t.TempDir(), "kiln.1")
	require.NoError(t, os.WriteFile(path, []byte(page), 0o644))
	cmd := exec.Command("man", "--warnings", "-l", path)
	cmd.Env = append(os.Environ(), "MANPAGER=cat", "PAGER=cat", "MANWIDTH=100", "LC_ALL=C.UTF-8")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	require.NoError(t, cmd.Run(), stderr.String())
	require.Empty(t, stderr.String(), "groff warnings")
	text := stdout.String()
	require.Regexp(t, `^KILN\(1\)`, text)
	for _, c := range commands() {
		require.Contains(t, text, "kiln "+c.name+"\n", "a section for %s", c.name)
		require.Contains(t, text, c.summary)
		for _, f := range commandFlags(c) {
			require.Regexp(t, regexp.MustCompile(`(?m)^\s+`+regexp.QuoteMeta(flagSpec{name: f.Name}.dashed())+`\b`), text, "kiln %s %s", c.name, f.Name)
		}
	}
	for _, e := range environment {
		require.Contains(t, text, e.name)
	}
	require.Contains(t, text, "Flags of kiln images share:")
	require.Contains(t, text, "EXIT STATUS")
}

func TestDidYouMean(t *testing.T) {
	code, _, errOut := runKiln(t, "buidl", "x.hcl")
	require.Equal(t, 2, code)
	require.Contains(t, errOut, `unknown command "buidl"; did you mean "build"?`)
	require.Less(t, strings.Count(errOut, "\n"), 3, "one error, not the whole usage")

	code, _, errOut = runKiln(t, "build", "--on-eror=keep", "x.hcl")
	require.Equal(t, 2, code)
	require.Contains(t, errOut, "kiln build: unknown flag --on-eror; did you mean --on-error?")
	require.NotContains(t, errOut, "Flags:", "no usage dump")

	code, _, errOut = runKiln(t, "images", "lsit")
	require.Equal(t, 2, code)
	require.Contains(t, errOut, `unknown subcommand "lsit"; did you mean "list"?`)

	code, _, errOut = runKiln(t, "run", "--frobnicate", "x.raw")
	require.Equal(t, 2, code)
	require.Contains(t, errOut, "unknown flag --frobnicate\n", "no suggestion when nothing is close")
}

// With NO_COLOR set, nothing kiln writes to a terminal carries an ANSI
// escape; without it, diagnostics on a terminal are coloured.
func TestNoColorOnATerminal(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "bad.hcl")
	require.NoError(t, os.WriteFile(bad, []byte("image \"x\" {\n  version = \"1.0\"\n  disk { sise = \"2GiB\" }\n}\n"), 0o644))
	onTerminal := func() string {
		master, slave := testutil.PTY(t)
		got := make(chan string)
		go func() {
			var b bytes.Buffer
			_, _ = io.Copy(&b, master) // until the slave is closed (EIO)
			got <- b.String()
		}()
		code := run([]string{"validate", bad}, io.Discard, slave)
		require.Equal(t, 2, code)
		slave.Close()
		select {
		case s := <-got:
			return s
		case <-time.After(10 * time.Second):
			t.Fatal("no output from the terminal")
			return ""
		}
	}
	t.Setenv("NO_COLOR", "")
	require.Contains(t, onTerminal(), "\x1b[", "colour on a terminal")
	t.Setenv("NO_COLOR", "1")
	out := onTerminal()
	require.Contains(t, out, "sise")
	require.NotContains(t, out, "\x1b", "no escape with NO_COLOR")
}

func TestKilnLog(t *testing.T) {
	t.Setenv("KILN_LOG", "loud")
	code, _, errOut := runKiln(t, "version")
	require.Equal(t, 2, code)
	require.Contains(t, errOut, `KILN_LOG="loud": use debug, info or warn`)

	t.Setenv("KILN_LOG", "")
	var b bytes.Buffer
	require.Equal(t, io.Discard, debugLog(&b), "no debug lines by default")
	opts, err := buildOptions(t.TempDir(), t.TempDir(), &b)
	require.NoError(t, err)
	opts.Logger.Info("not shown")
	opts.Logger.Warn("shown")
	require.NotContains(t, b.String(), "not shown")
	require.Regexp(t, `^time=\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+\S* level=WARN msg=shown\n$`, b.String())

	t.Setenv("KILN_LOG", "debug")
	b.Reset()
	w := debugLog(&b)
	_, _ = io.WriteString(w, "+ qemu-system-x86_64 -nodefaults\npartial")
	_, _ = io.WriteString(w, " line\n")
	require.Regexp(t, `(?m)^time=\S+ level=DEBUG msg="\+ qemu-system-x86_64 -nodefaults"$`, b.String())
	require.Regexp(t, `(?m)^time=\S+ level=DEBUG msg="partial line"$`, b.String())
}

// kiln --help, README's command table and docs/cli.md name every command
// of the table, and every flag each command parses is documented in docs/
// (docs/cli.md, or the page it points to, such as formats.md for convert).
func TestDocsNameEveryCommandAndFlag(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	require.NoError(t, err)
	cli, err := os.ReadFile("../../docs/cli.md")
	require.NoError(t, err)
	pages, err := filepath.Glob("../../docs/*.md")
	require.NoError(t, err)
	var docs strings.Builder
	for _, p := range pages {
		data, err := os.ReadFile(p)
		require.NoError(t, err)
		docs.Write(data)
	}
	_, help, _ := runKiln(t, "--help")
	for _, c := range commands() {
		require.Contains(t, string(readme), "`kiln "+c.name, "README's command table: kiln %s", c.name)
		require.Contains(t, string(cli), "kiln "+c.name, "docs/cli.md: kiln %s", c.name)
		require.Contains(t, help, "  "+c.name+" ")
		for _, f := range commandFlags(c) {
			require.Regexp(t, regexp.MustCompile("-"+regexp.QuoteMeta(f.Name)+"[` =\\]|,]"), docs.String(), "docs: kiln %s --%s", c.name, f.Name)
		}
	}
}
