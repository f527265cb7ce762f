package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
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

func commands() []command {
	return []command{
		{"build", "Build, boot-test and publish an image from a recipe", buildUsage, cmdBuild},
		{"validate", "Check a recipe and report every problem in it", validateUsage, cmdValidate},
		{"inspect", "Show a recipe resolved: variables and their sources, locals, components, layout", inspectUsage, cmdInspect},
		{"fmt", "Rewrite recipes and component files in the canonical layout", fmtUsage, cmdFmt},
		{"schedule", "Run pipelines of recipes on cron schedules, as a service", scheduleUsage, cmdSchedule},
		{"test", "Smoke-test any disk image or artifact: base health checks plus your tests", testUsage, cmdTest},
		{"run", "Boot a disk image or artifact on this terminal's serial console", runUsage, cmdRun},
		{"convert", "Convert a disk image to raw, qcow2, VMDK, VHD, VHDX or OVA, natively", convertUsage, cmdConvert},
		{"verify", "Check a disk image against a platform's rules, or a build's signature and checksums", verifyUsage, cmdVerify},
		{"keygen", "Make a key pair to sign builds with (kiln build --sign-key)", keygenUsage, cmdKeygen},
		{"images", "The catalog: list, show, rm, deprecate, share, copy, prune builds", imagesUsage, cmdImages},
		{"version", "Print kiln's version and the recipe format version", "kiln version [--json]", cmdVersion},
	}
}

const mainUsage = `kiln turns an HCL recipe into a bootable VM image that has been tested and versioned.

Usage:
  kiln <command> [flags] [arguments]

Commands:
%s
Run 'kiln <command> --help' for a command's flags.

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
	for _, c := range commands() {
		if c.name == args[0] {
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			code := c.run(ctx, args[1:], stdout, stderr)
			if ctx.Err() != nil && code != exitOK {
				fmt.Fprintln(stderr, "kiln: interrupted; nothing was published")
				return exitInterrupt
			}
			return code
		}
	}
	fmt.Fprintf(stderr, "kiln: unknown command %q\n", args[0])
	printMainUsage(stderr)
	return exitUsage
}

func printMainUsage(w io.Writer) {
	var b strings.Builder
	for _, c := range commands() {
		fmt.Fprintf(&b, "  %-10s %s\n", c.name, c.summary)
	}
	fmt.Fprintf(w, mainUsage, b.String())
}

// multiFlag collects a repeatable flag.
type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

// parseInterleaved parses flags that may come before or after positional
// arguments (kiln build recipe.hcl -var x=y).
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return positional, nil
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

func newFlagSet(name, usage string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "%s\n\nFlags:\n", usage)
		fs.PrintDefaults()
	}
	return fs
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
