package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/kiln-build/kiln/boottest"
	"github.com/kiln-build/kiln/components"
	"github.com/kiln-build/kiln/internal/guest"
	"github.com/kiln-build/kiln/internal/livedir"
	"github.com/kiln-build/kiln/internal/nocloud"
	"github.com/kiln-build/kiln/internal/qemu"
	krun "github.com/kiln-build/kiln/internal/run"
	"github.com/kiln-build/kiln/manifest"
	"github.com/kiln-build/kiln/platform"
	"golang.org/x/term"
)

const testUsage = `kiln test [flags] IMAGE_FILE|ARTIFACT

Smoke-tests a disk image: boots a throwaway copy in QEMU under each firmware
it supports, holds it to the base health checks (multi-user.target reached,
no failed systemd units, no kernel panic, oops, BUG or call trace) and runs
each --test script or executable inside it as root. The image is never changed.

IMAGE_FILE is a raw (also .zst or .xz compressed), qcow2, VMDK, VHD or VHDX
image, built by Kiln or by anything else. ARTIFACT is a published build
directory (images/<name>/<version>/<build>) or name@version[/build] in the
catalog (--images; version may be a selector such as 1.x.x).

Firmware: --firmware, else the artifact's boot mode, else detected from the
partitions (an EFI system partition means uefi, a BIOS boot partition or MBR
boot code means bios, both means both). Both boots run at once when the host
has a core for every vCPU of both, else one after the other.

Secure Boot: --secure-boot boots UEFI under Secure Boot firmware found through
QEMU's firmware descriptors, with Microsoft's keys enrolled and Secure Boot
enforced (what clouds run); --secure-boot-vars FILE uses that OVMF variable
store instead (your own keys in db). Such a boot is also held to the
secure-boot health check (the guest's SecureBoot EFI variable is 1), and a
firmware that refuses the boot loader fails it at once. --tpm gives the VM a
TPM 2.0 (swtpm).

Exit codes: 0 every check and test passed, 1 a test or health check failed
(or the image could not be booted), 2 usage error.`

const runUsage = `kiln run [flags] IMAGE_FILE|ARTIFACT

Boots an image in QEMU with its serial console on this terminal, like
qemu -nographic: Ctrl-A x quits, Ctrl-A c switches to the QEMU monitor,
Ctrl-C goes to the guest. The disk is attached through a throwaway overlay
(snapshot=on), so the image is never changed. Arguments, firmware,
--secure-boot, --secure-boot-vars and --tpm are as for kiln test. KVM is
used when it works, TCG otherwise.

With --ssh, QEMU forwards a port on 127.0.0.1 to the guest's port 22, and a
throwaway key made for this run may log in as root: kiln writes it, and
sshd settings that admit it, into a throwaway copy of the image (never the
image). kiln prints the ssh command; kiln ssh, from another terminal, finds
the running guest and connects. An image without sshd is refused before it
boots.

With --cloud-init FILE, the guest gets FILE as cloud-init user-data on a
NoCloud seed disk (ISO 9660 labelled cidata, with a new instance-id), so
cloud-init applies it at this boot. An image without cloud-init is refused
before it boots.`

func cmdTest(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("test", testUsage, stderr)
	var tests multiFlag
	fs.Var(&tests, "test", "a script or executable to run in the guest as root (repeatable)")
	firmware := fs.String("firmware", "", "uefi or bios (default: from the manifest, else detected)")
	images := fs.String("images", defaultImagesDir(), "catalog for name@version arguments (env KILN_IMAGES)")
	timeout := fs.Duration("timeout", 5*time.Minute, "time limit of each --test")
	junit := fs.String("junit", "", "write the results as JUnit XML to this file")
	logs := fs.String("logs", "", "keep the serial console of each boot (serial-<firmware>.log) in this directory")
	cloudInit := fs.String("cloud-init", "", "give the guest this cloud-init user-data on a NoCloud seed disk (cidata)")
	asJSON := fs.Bool("json", false, "print one JSON object on stdout")
	verbose := fs.Bool("verbose", false, "copy the log (every command and its output) to stderr")
	profile := fs.Bool("profile", false, "print when each boot reached each milestone and its slowest units (with --logs, keep serial-<firmware>.timed.log and .harness.log)")
	devices := deviceFlags(fs)
	image, code := oneArg(fs, args, stderr, "IMAGE_FILE or ARTIFACT")
	if code >= 0 {
		return code
	}
	boot, err := bootFlag(*firmware)
	if err != nil {
		return fail(stdout, stderr, *asJSON, fmt.Errorf("--firmware %q: use uefi or bios", *firmware), exitUsage)
	}
	var steps []components.Step
	seen := map[string]bool{}
	for _, p := range tests {
		data, err := os.ReadFile(p)
		if err != nil {
			return fail(stdout, stderr, *asJSON, fmt.Errorf("--test: %w", err), exitUsage)
		}
		name := filepath.Base(p)
		for i := 2; seen[name]; i++ {
			name = fmt.Sprintf("%s-%d", filepath.Base(p), i)
		}
		seen[name] = true
		steps = append(steps, components.Step{Name: name, Script: data, Timeout: *timeout})
	}
	userData, err := readUserData(*cloudInit)
	if err != nil {
		return fail(stdout, stderr, *asJSON, err, exitUsage)
	}
	if *logs != "" {
		if err := os.MkdirAll(*logs, 0o755); err != nil {
			return fail(stdout, stderr, *asJSON, err, exitUsage)
		}
	}
	dev, err := devices.get(boot)
	if err != nil {
		return fail(stdout, stderr, *asJSON, err, exitUsage)
	}
	if err := krun.Require(append([]string{"debugfs", "qemu-system-x86_64"}, dev.tools()...)...); err != nil {
		return fail(stdout, stderr, *asJSON, err, exitFailed)
	}
	scratch, err := scratchDir("kiln-test-")
	if err != nil {
		return fail(stdout, stderr, *asJSON, err, exitFailed)
	}
	defer scratch.Remove()
	target, err := boottest.OpenTarget(ctx, image, *images, scratch.Path)
	if err != nil {
		return targetError(stdout, stderr, *asJSON, err)
	}
	dev.fromManifest(target)
	var log io.Writer = debugLog(stderr)
	if *verbose {
		log = stderr
	}
	if !*asJSON {
		fw := string(boot)
		if fw == "" {
			names := make([]string, len(target.Firmwares))
			for i, b := range target.Firmwares {
				names[i] = string(b)
			}
			fw = strings.Join(names, " and ")
		}
		fmt.Fprintf(stderr, "testing %s (%s %s) under %s: base health checks and %d test(s)\n", target.Source, target.Name, target.Version, fw, len(steps))
	}
	rep, err := boottest.Smoke(ctx, boottest.SmokeRequest{Target: target, Firmware: boot, Tests: steps, WorkDir: scratch.Path, ConsoleDir: *logs, Log: log, Profile: *profile, UserData: userData, Devices: dev.Devices})
	if err != nil {
		return fail(stdout, stderr, *asJSON, fmt.Errorf("test: %w", err), imageRefusalCode(err))
	}
	if *junit != "" {
		if err := boottest.WriteJUnit(*junit, target.Name, rep.Results, rep.Health); err != nil {
			return fail(stdout, stderr, *asJSON, err, exitFailed)
		}
	}
	status, code := "passed", exitOK
	if rep.Failure != nil {
		status, code = "failed", exitFailed
	}
	if *asJSON {
		out := map[string]any{"status": status, "image": target.Source, "booted": target.Path, "name": target.Name, "version": target.Version,
			"firmwares": target.Firmwares, "tests": rep.Results, "health": rep.Health, "exit_code": code}
		if rep.Failure != nil {
			out["error"] = rep.Failure.Error()
		}
		writeJSON(stdout, out)
		return code
	}
	for _, h := range rep.Health {
		for _, c := range h.Checks {
			fmt.Fprintf(stdout, "  health %-20s %s (%s)\n", c.Name, strings.ToUpper(string(c.Status)), h.Firmware)
		}
	}
	if *profile {
		for _, h := range rep.Health {
			printProfile(stdout, h)
		}
	}
	for _, t := range rep.Results {
		fmt.Fprintf(stdout, "  test %-22s %s (%s, exit code %d, %.1fs)\n", t.Name, strings.ToUpper(string(t.Status)), t.Firmware, t.ExitCode, t.Seconds)
		if t.Status != manifest.Pass && strings.TrimSpace(t.Output) != "" {
			for _, l := range strings.Split(strings.TrimRight(t.Output, "\n"), "\n") {
				fmt.Fprintf(stdout, "    | %s\n", l)
			}
		}
	}
	if rep.Failure != nil {
		fmt.Fprintf(stderr, "kiln: %v\n", rep.Failure)
	} else {
		fmt.Fprintln(stdout, "passed")
	}
	return code
}

func cmdRun(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("run", runUsage, stderr)
	firmware := fs.String("firmware", "", "uefi or bios (default: from the manifest, else detected)")
	images := fs.String("images", defaultImagesDir(), "catalog for name@version arguments (env KILN_IMAGES)")
	timeout := fs.Duration("timeout", 0, "stop the guest after this long (default: no limit)")
	withSSH := fs.Bool("ssh", false, "forward a loopback port to the guest's sshd and let a throwaway key log in (see kiln ssh)")
	sshPort := fs.Int("ssh-port", 0, "the port on 127.0.0.1 for --ssh (default: a free one)")
	cloudInit := fs.String("cloud-init", "", "give the guest this cloud-init user-data on a NoCloud seed disk (cidata)")
	devices := deviceFlags(fs)
	image, code := oneArg(fs, args, stderr, "IMAGE_FILE or ARTIFACT")
	if code >= 0 {
		return code
	}
	fw, err := bootFlag(*firmware)
	if err != nil {
		fmt.Fprintf(stderr, "kiln run: --firmware %q: use uefi or bios\n", *firmware)
		return exitUsage
	}
	if *sshPort != 0 && !*withSSH {
		fmt.Fprintln(stderr, "kiln run: --ssh-port needs --ssh")
		return exitUsage
	}
	userData, err := readUserData(*cloudInit)
	if err != nil {
		fmt.Fprintf(stderr, "kiln run: %v\n", err)
		return exitUsage
	}
	dev, err := devices.get(fw)
	if err != nil {
		fmt.Fprintf(stderr, "kiln run: %v\n", err)
		return exitUsage
	}
	tools := []string{"qemu-system-x86_64"}
	if *withSSH || userData != nil {
		tools = append(tools, "debugfs")
	}
	if *withSSH {
		tools = append(tools, "ssh-keygen")
	}
	if err := krun.Require(append(tools, dev.tools()...)...); err != nil {
		fmt.Fprintf(stderr, "kiln: %v\n", err)
		return exitFailed
	}
	scratch, err := scratchDir("kiln-run-")
	if err != nil {
		fmt.Fprintf(stderr, "kiln: %v\n", err)
		return exitFailed
	}
	defer scratch.Remove()
	target, err := boottest.OpenTarget(ctx, image, *images, scratch.Path)
	if err != nil {
		return targetError(stdout, stderr, false, err)
	}
	dev.fromManifest(target)
	if fw == "" {
		fw = target.Firmwares[0]
	}
	req := boottest.RunRequest{Target: target, Firmware: fw, Stdout: stdout, WorkDir: scratch.Path, Timeout: *timeout, UserData: userData, Devices: dev.Devices, Log: debugLog(stderr)}
	if *withSSH {
		access, forget, err := startSSHSession(ctx, target.Source, scratch.Path, *sshPort, stderr)
		if err != nil {
			fmt.Fprintf(stderr, "kiln run: --ssh: %v\n", err)
			return exitFailed
		}
		defer forget()
		req.SSH = access
	}
	if userData != nil {
		fmt.Fprintf(stderr, "kiln: the guest gets %s as cloud-init user-data (NoCloud seed)\n", *cloudInit)
	}
	restore := func() {}
	req.Attach = func() (io.Reader, error) {
		fmt.Fprintf(stderr, "kiln: booting %s under %s on a throwaway overlay; Ctrl-A x quits, Ctrl-A c is the QEMU monitor\n", target.Source, fw)
		stdin, undo, err := consoleInput()
		if err == nil {
			restore = undo
		}
		return stdin, err
	}
	res, err := boottest.RunTarget(ctx, req)
	restore()
	if err != nil {
		fmt.Fprintf(stderr, "\nkiln run: %v\n", err)
		return imageRefusalCode(err)
	}
	if res.TimedOut {
		fmt.Fprintf(stderr, "\nkiln: stopped the guest after %s (--timeout)\n", *timeout)
	}
	return exitOK
}

// readUserData reads --cloud-init's file ("" gives nil), refusing
// user-data cloud-init would ignore.
func readUserData(path string) ([]byte, error) {
	if path == "" {
		return nil, nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--cloud-init: %w", err)
	}
	if err := nocloud.CheckUserData(data); err != nil {
		return nil, fmt.Errorf("--cloud-init %s: %w", path, err)
	}
	return data, nil
}

// imageRefusalCode is the exit code of a boot that failed: 2 when the image
// cannot do what the command line asked (no sshd for --ssh, no cloud-init
// for --cloud-init), 1 otherwise.
func imageRefusalCode(err error) int {
	var noSSHD *guest.NoSSHDError
	var noCI *guest.NoCloudInitError
	if errors.As(err, &noSSHD) || errors.As(err, &noCI) {
		return exitUsage
	}
	return exitFailed
}

// consoleInput returns what QEMU reads keystrokes from. A pipe or file is
// passed as it is. A terminal is put in raw mode (so Ctrl-A and Ctrl-C reach
// QEMU and the guest) and relayed through a pipe, so QEMU, which runs in its
// own process group, never reads the terminal itself.
func consoleInput() (io.Reader, func(), error) {
	fd := int(os.Stdin.Fd())
	if !term.IsTerminal(fd) {
		return os.Stdin, func() {}, nil
	}
	state, err := term.MakeRaw(fd)
	if err != nil {
		return nil, nil, err
	}
	r, w, err := os.Pipe()
	if err != nil {
		_ = term.Restore(fd, state)
		return nil, nil, err
	}
	go func() { _, _ = io.Copy(w, os.Stdin) }()
	return r, func() {
		_ = term.Restore(fd, state)
		_ = w.Close()
		_ = r.Close()
	}, nil
}

func targetError(stdout, stderr io.Writer, asJSON bool, err error) int {
	code := exitFailed
	var ue *boottest.UsageError
	if errors.As(err, &ue) {
		code = exitUsage
	}
	return fail(stdout, stderr, asJSON, err, code)
}

// bootFlag reads --firmware: "" (every firmware of the image), uefi or bios.
func bootFlag(s string) (platform.Boot, error) {
	if s == "" {
		return "", nil
	}
	return platform.ParseBoot(s)
}

// testVM describes the VM a boot ran in: "tcg x86-64-v2-aes, 1 vCPU"
// (without the CPU or the vCPUs for a manifest older than health[].cpu or
// health[].vcpus; the CPU is left out under KVM, where it is the host's).
func testVM(h manifest.Health) string {
	vm := h.Accelerator
	if h.CPU != "" && h.CPU != "host" {
		vm += " " + h.CPU
	}
	switch h.VCPUs {
	case 0:
		return vm
	case 1:
		return vm + ", 1 vCPU"
	}
	return fmt.Sprintf("%s, %d vCPUs", vm, h.VCPUs)
}

// printProfile prints when a boot reached each milestone, and its slowest
// units.
func printProfile(w io.Writer, h manifest.Health) {
	fmt.Fprintf(w, "  boot profile under %s (%s), seconds from QEMU's start:\n", h.Firmware, testVM(h))
	p := h.Profile
	if p == nil {
		fmt.Fprintln(w, "    no milestone seen on the console or reported by the guest")
		return
	}
	prev := 0.0
	for _, m := range []struct {
		name string
		at   float64
		what string
	}{
		{"firmware", p.Firmware, "the firmware started the bootloader"},
		{"bootloader", p.Bootloader, "the bootloader started loading the kernel"},
		{"kernel", p.Kernel, "the kernel started"},
		{"init", p.Init, "the kernel ran init (the initramfs)"},
		{"root", p.Root, "the root filesystem was mounted"},
		{"systemd", p.Systemd, "systemd started"},
		{"multi-user", p.MultiUser, "multi-user.target was reached"},
	} {
		if m.at == 0 {
			fmt.Fprintf(w, "    %-11s      -           %s: not seen\n", m.name, m.what)
			continue
		}
		fmt.Fprintf(w, "    %-11s %6.2f  (+%5.2f)  %s\n", m.name, m.at, m.at-prev, m.what)
		prev = m.at
	}
	fmt.Fprintf(w, "    %-11s %6.2f            the guest powered off after its tests\n", "end", h.BootSeconds)
	if len(p.SlowestUnits) > 0 {
		fmt.Fprintln(w, "  slowest units (systemd-analyze blame):")
		for _, u := range p.SlowestUnits {
			fmt.Fprintf(w, "    %7.3fs  %s\n", u.Seconds, u.Unit)
		}
	}
}

// devicesFlags are --secure-boot, --secure-boot-vars and --tpm, shared by
// kiln test and kiln run.
type devicesFlags struct {
	secureBoot *bool
	vars       *string
	tpm        *bool
	vcpus      *int
	tcgCPU     *string
}

func deviceFlags(fs *flag.FlagSet) devicesFlags {
	return devicesFlags{
		secureBoot: fs.Bool("secure-boot", false, "boot UEFI under Secure Boot firmware with Microsoft's keys enrolled"),
		vars:       fs.String("secure-boot-vars", "", "boot UEFI under Secure Boot with this OVMF variable store (your keys in db)"),
		tpm:        fs.Bool("tpm", false, "give the VM a TPM 2.0 (swtpm)"),
		vcpus:      fs.Int("vcpus", 0, "the VM's vCPUs (default: env KILN_VCPUS, else 2 under KVM; under TCG 2 on a host with 4 or more cores, else 1)"),
		tcgCPU:     fs.String("tcg-cpu", "", "the VM's CPU under TCG: x86-64-v2-aes or max (default: an artifact's boot.tcg_cpu, else env KILN_TCG_CPU, else x86-64-v2-aes; KVM gives the host's CPU)"),
	}
}

// chosenDevices are the flags' devices and the host tools they need.
type chosenDevices struct{ boottest.Devices }

// get returns the chosen devices; firmware is --firmware ("" for the image's).
func (f devicesFlags) get(firmware platform.Boot) (chosenDevices, error) {
	d := chosenDevices{boottest.Devices{SecureBoot: *f.secureBoot || *f.vars != "", SecureBootVars: *f.vars, TPM: *f.tpm, CPUs: *f.vcpus, TCGCPU: platform.TCGCPU(*f.tcgCPU)}}
	if *f.vcpus < 0 || *f.vcpus > qemu.MaxCPUs {
		return d, fmt.Errorf("--vcpus %d: want a whole number of vCPUs from 1 to %d", *f.vcpus, qemu.MaxCPUs)
	}
	if *f.tcgCPU != "" {
		if err := qemu.CheckTCGCPU(d.TCGCPU); err != nil {
			return d, fmt.Errorf("--tcg-cpu: %w", err)
		}
	}
	if d.SecureBoot && firmware == platform.BootBIOS {
		return d, fmt.Errorf("Secure Boot is a UEFI feature: --secure-boot and --secure-boot-vars need --firmware uefi (or none)")
	}
	if *f.vars != "" {
		abs, err := filepath.Abs(*f.vars)
		if err != nil {
			return d, err
		}
		if fi, err := os.Stat(abs); err != nil || !fi.Mode().IsRegular() {
			return d, fmt.Errorf("--secure-boot-vars %s: no such file", *f.vars)
		}
		d.SecureBootVars = abs
	}
	return d, nil
}

// fromManifest gives a Kiln artifact the TCG CPU its recipe chose
// (boot.tcg_cpu) unless --tcg-cpu chose one: software built for AVX
// passes its tests again under kiln test.
func (d *chosenDevices) fromManifest(t *boottest.Target) {
	if d.TCGCPU == "" && t.Manifest != nil {
		d.TCGCPU = t.Manifest.Boot.TCGCPU
	}
}

func (d chosenDevices) tools() []string {
	if d.TPM {
		return []string{qemu.SwtpmBinary, qemu.SwtpmSetupBinary}
	}
	return nil
}

// scratchDir sweeps what killed kiln test and kiln run processes left in
// the temporary directory, then makes a new live directory (internal/livedir)
// there for this one.
func scratchDir(prefix string) (*livedir.Dir, error) {
	_, _ = livedir.SweepDead(os.TempDir(), prefix)
	return livedir.Create(os.TempDir(), prefix, 0o700)
}
