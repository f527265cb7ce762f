package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/kiln-build/kiln/internal/didyoumean"
)

// Version is set at link time (-ldflags "-X main.Version=...").
var Version = "0.1.0-dev"

// Exit codes, documented in docs/cli.md.
const (
	exitOK        = 0
	exitFailed    = 1   // the build or a test failed
	exitUsage     = 2   // bad command line or recipe
	exitInterrupt = 130 // SIGINT or SIGTERM
)

type command struct {
	name    string
	summary string
	usage   string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) int
}

// commands is the command table: the dispatcher, kiln --help, shell
// completion (completion.go) and the man page (man.go) all read it, so they
// cannot drift apart.
func commands() []command {
	return []command{
		{"build", "Build, boot-test and publish an image from a recipe", buildUsage, cmdBuild},
		{"validate", "Check a recipe and report every problem in it", validateUsage, cmdValidate},
		{"inspect", "Show a recipe resolved: variables and their sources, locals, components, layout", inspectUsage, cmdInspect},
		{"fmt", "Rewrite recipes and component files in the canonical layout", fmtUsage, cmdFmt},
		{"schedule", "Run pipelines of recipes on cron schedules, as a service", scheduleUsage, cmdSchedule},
		{"test", "Smoke-test any disk image or artifact: base health checks plus your tests", testUsage, cmdTest},
		{"run", "Boot a disk image or artifact on this terminal's serial console", runUsage, cmdRun},
		{"ssh", "Open an SSH session into a guest started with kiln run --ssh", sshUsage, cmdSSH},
		{"convert", "Convert a disk image to raw, qcow2, VMDK, VHD, VHDX or OVA, natively", convertUsage, cmdConvert},
		{"verify", "Check a disk image against a platform's rules, or a build's signature and checksums", verifyUsage, cmdVerify},
		{"keygen", "Make a key pair to sign builds with (kiln build --sign-key)", keygenUsage, cmdKeygen},
		{"images", "The catalog: list, show, rm, deprecate, share, copy, push, pull, prune, check builds", imagesUsage, cmdImages},
		{"cache", "The cache of bases and build-step layers: ls, prune", cacheUsage, cmdCache},
		{"completion", "Print a shell completion script for bash, zsh or fish", completionUsage, cmdCompletion},
		{"man", "Print kiln's manual page (roff), generated from this help", manUsage, cmdMan},
		{"version", "Print kiln's version and the recipe format version", "kiln version [--json]", cmdVersion},
	}
}

// subcommand is one entry of a command's own table (kiln images list).
type subcommand struct {
	name    string
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) int
}

// subcommandsOf lists a command's subcommands, for completion and the man page.
func subcommandsOf(cmd string) []subcommand {
	switch cmd {
	case "images":
		return imagesSubcommands()
	case "cache":
		return cacheSubcommands()
	case "completion":
		return completionShells()
	}
	return nil
}

func subcommandNames(subs []subcommand) []string {
	names := make([]string, len(subs))
	for i, s := range subs {
		names[i] = s.name
	}
	return names
}

// environment lists the variables kiln reads, for kiln --help and the man page.
var environment = []struct{ name, meaning string }{
	{"KILN_VAR_<name>", "a recipe variable"},
	{"KILN_IMAGES", "default catalog directory (else ./images)"},
	{"KILN_CACHE", "default base cache directory (else /var/cache/kiln as root)"},
	{"KILN_ACCEL", "kvm or tcg: skip QEMU accelerator detection"},
	{"KILN_VCPUS", "the vCPUs of the VMs kiln boots (default 2 under KVM; under TCG 2 with 4+ host cores, else 1)"},
	{"KILN_TCG_CPU", "the CPU of the VMs kiln boots under TCG: x86-64-v2-aes (default) or max"},
	{"KILN_LOG", "log level on stderr: debug, info or warn (the default)"},
	{"NO_COLOR", "any value: no ANSI colour and no progress spinner, also on a terminal"},
	{"CI", "any value: plain progress lines even on a terminal"},
	{"SOURCE_DATE_EPOCH", "the source date (else from the inputs); the time timestamp() returns"},
	{"KILN_SIGN_KEY", "the signing key of kiln build and kiln schedule: a path, or the PEM text"},
}

const mainUsage = `kiln turns an HCL recipe into a bootable VM image that has been tested and versioned.

Usage:
  kiln <command> [flags] [arguments]

Commands:
%s
Run 'kiln <command> --help' for a command's flags.

Environment:
%s
Exit codes: 0 success, 1 build, test or catalog operation failed, 2 usage or recipe error, 130 interrupted.
`

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		if len(args) > 1 && args[0] == "help" {
			return run([]string{args[1], "--help"}, stdout, stderr)
		}
		printMainUsage(stdout)
		if len(args) == 0 {
			return exitUsage
		}
		return exitOK
	}
	if args[0] == "--version" {
		args[0] = "version"
	}
	var names []string
	for _, c := range commands() {
		names = append(names, c.name)
		if c.name == args[0] {
			if err := checkLogLevel(); err != nil {
				fmt.Fprintf(stderr, "kiln: %v\n", err)
				return exitUsage
			}
			ctx, stop := interruptContext()
			defer stop()
			code := c.run(ctx, args[1:], stdout, stderr)
			if ctx.Err() != nil && code != exitOK {
				fmt.Fprintln(stderr, "kiln: interrupted")
				return exitInterrupt
			}
			return code
		}
	}
	fmt.Fprintf(stderr, "kiln: unknown command %q%s\nRun 'kiln --help' for the list of commands.\n", args[0], didYouMean(args[0], names))
	return exitUsage
}

// didYouMean returns "; did you mean X?" for the name closest to given, or "".
func didYouMean(given string, names []string) string {
	if best := didyoumean.Closest(given, names); best != "" {
		return fmt.Sprintf("; did you mean %q?", best)
	}
	return ""
}

func printMainUsage(w io.Writer) {
	var cmds, env strings.Builder
	for _, c := range commands() {
		fmt.Fprintf(&cmds, "  %-11s %s\n", c.name, c.summary)
	}
	for _, e := range environment {
		fmt.Fprintf(&env, "  %-17s %s\n", e.name, e.meaning)
	}
	fmt.Fprintf(w, mainUsage, cmds.String(), env.String())
}

// runSubcommand runs the subcommand args[0] of command name from its table,
// or prints its usage: on request (exit 0), without a subcommand or for an
// unknown one (exit 2, with the closest name).
func runSubcommand(ctx context.Context, name, usage string, subs []subcommand, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprintln(stderr, usage)
		if len(args) == 0 {
			return exitUsage
		}
		return exitOK
	}
	for _, sub := range subs {
		if sub.name == args[0] {
			return sub.run(ctx, args[1:], stdout, stderr)
		}
	}
	fmt.Fprintf(stderr, "kiln %s: unknown subcommand %q%s\n\n%s\n", name, args[0], didYouMean(args[0], subcommandNames(subs)), usage)
	return exitUsage
}

// multiFlag collects a repeatable flag.
type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

// parseInterleaved parses flags that may come before or after positional
// arguments (kiln build recipe.hcl -var x=y).
//
// A mistake is reported in one line with the closest flag's name, not with
// the whole usage; -h and --help print the usage.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var positional []string
	for {
		if err := parseQuietly(fs, args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return positional, nil
		}
		// "--" ends the flags: flag.Parse consumes it when it follows a
		// flag, and leaves it when it comes first.
		if used := len(args) - len(rest); used > 0 && args[used-1] == "--" {
			return append(positional, rest...), nil
		}
		if rest[0] == "--" {
			return append(positional, rest[1:]...), nil
		}
		positional = append(positional, rest[0])
		args = rest[1:]
	}
}

// oneArg parses the flags and the one argument a command takes (what
// names it in the error: "RECIPE"). code is -1 when they parse, else the
// exit code to return.
func oneArg(fs *flag.FlagSet, args []string, stderr io.Writer, what string) (arg string, code int) {
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return "", flagError(err)
	}
	if len(pos) != 1 {
		fmt.Fprintf(stderr, "kiln %s: expected exactly one %s\n", fs.Name(), strings.TrimSpace(what+" argument"))
		fs.Usage()
		return "", exitUsage
	}
	return pos[0], -1
}

// parseQuietly parses args into fs, printing a short error with a "did you
// mean" hint instead of the flag package's error and usage.
func parseQuietly(fs *flag.FlagSet, args []string) error {
	out := fs.Output()
	fs.SetOutput(io.Discard)
	err := fs.Parse(args)
	fs.SetOutput(out)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, flag.ErrHelp):
		fs.Usage()
		return err
	}
	msg := err.Error()
	if name, ok := strings.CutPrefix(msg, "flag provided but not defined: "); ok {
		var names []string
		fs.VisitAll(func(f *flag.Flag) { names = append(names, f.Name) })
		given := strings.TrimLeft(name, "-")
		msg = "unknown flag --" + given
		if best := didyoumean.Closest(given, names); best != "" {
			msg += fmt.Sprintf("; did you mean --%s?", best)
		}
	}
	fmt.Fprintf(out, "kiln %s: %s\nRun 'kiln %s --help' for its flags.\n", fs.Name(), msg, fs.Name())
	return err
}

func newFlagSet(name, usage string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "%s\n\nFlags:\n", usage)
		fs.PrintDefaults()
	}
	if p, ok := stderr.(*flagProbe); ok {
		p.sets = append(p.sets, fs)
	}
	return fs
}

// flagProbe is the stderr a command runs with when completion or the man
// page asks for its flags: newFlagSet records each flag set made for it,
// and --help stops the command before it does anything (every command
// parses its flags first). So the flags they list are the ones the command
// really parses.
type flagProbe struct{ sets []*flag.FlagSet }

func (*flagProbe) Write(b []byte) (int, error) { return len(b), nil }

// flagsOf returns the flags a command (or subcommand) parses, sorted by name.
func flagsOf(run func(ctx context.Context, args []string, stdout, stderr io.Writer) int) []*flag.Flag {
	p := &flagProbe{}
	run(context.Background(), []string{"--help"}, io.Discard, p)
	var flags []*flag.Flag
	for _, fs := range p.sets {
		fs.VisitAll(func(f *flag.Flag) { flags = append(flags, f) })
	}
	return flags
}

// commandFlags is flagsOf for a command of the table.
func commandFlags(c command) []*flag.Flag {
	return flagsOf(c.run)
}

// flagError turns a flag parse error into an exit code (help is success).
func flagError(err error) int {
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	return exitUsage
}

func cmdVersion(_ context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("version", "kiln version [--json]", stderr)
	asJSON := fs.Bool("json", false, "print JSON")
	if _, err := parseInterleaved(fs, args); err != nil {
		return flagError(err)
	}
	if *asJSON {
		return writeJSON(stdout, map[string]string{"version": Version, "recipe_format": recipeFormat()})
	}
	fmt.Fprintf(stdout, "kiln %s (recipe format %s)\n", Version, recipeFormat())
	return exitOK
}

func writeJSON(w io.Writer, v any) int {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return exitFailed
	}
	return exitOK
}

// defaultCacheDir is /var/cache/kiln for root, else the user's cache directory.
func defaultCacheDir() string {
	if v := os.Getenv("KILN_CACHE"); v != "" {
		return v
	}
	if os.Geteuid() == 0 {
		return "/var/cache/kiln"
	}
	if d, err := os.UserCacheDir(); err == nil {
		return filepath.Join(d, "kiln")
	}
	return ".kiln-cache"
}

func defaultImagesDir() string {
	if v := os.Getenv("KILN_IMAGES"); v != "" {
		return v
	}
	return "images"
}
