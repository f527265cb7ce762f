package boottest

import (
	"bytes"
	"context"
	"encoding/xml"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/kiln-build/kiln/components"
	"github.com/kiln-build/kiln/internal/guest"
	"github.com/kiln-build/kiln/internal/nocloud"
	"github.com/kiln-build/kiln/internal/qemu"
	"github.com/kiln-build/kiln/internal/sparse"
	"github.com/kiln-build/kiln/manifest"
	"github.com/kiln-build/kiln/platform"
)

// Request describes one boot of an image under one firmware.
type Request struct {
	Image      string // raw, qcow2, VMDK, VHD or VHDX; never modified (see prepareBootDisk)
	RootOffset uint64 // byte offset of the ext4 root partition
	Firmware   platform.Boot
	Name       string
	Version    string
	Tests      []components.Step
	WorkDir    string
	ConsoleLog string
	Log        io.Writer
	// GrowBy enlarges the throwaway copy, as a bigger cloud disk would:
	// images grow their root filesystem to fill it at boot.
	GrowBy uint64
	// SkipHealth names base health checks (recipes.HealthChecks) that are
	// recorded as skipped instead of failing the boot.
	SkipHealth []string
	// Profile asks for the slowest units in the boot profile too and, with
	// a ConsoleLog, keeps the timed console beside it (TimedConsoleLog).
	Profile bool
	// UserData, when set, is cloud-init user-data, given to the guest on a
	// NoCloud seed disk (see attachUserData).
	UserData []byte
	// Secure Boot and TPM: see Firmware.
	Devices
}

// Devices are what the test VM has besides its disk: Secure Boot firmware
// (UEFI boots only) and a TPM.
type Devices struct {
	// SecureBoot boots UEFI under Secure Boot firmware found through QEMU's
	// descriptors: Microsoft's keys enrolled and Secure Boot enforced, or,
	// with SecureBootVars, that variable store (your own keys in db). The
	// boot is held to the secure-boot health check, and a firmware that
	// refuses the boot loader ends it at once.
	SecureBoot     bool
	SecureBootVars string
	// TPM gives the VM a TPM 2.0 (swtpm), its state in the boot's
	// throwaway directory.
	TPM bool
	// CPUs is the VM's vCPU count; 0 leaves it to qemu.DefaultCPUs.
	CPUs int
	// TCGCPU is the VM's CPU under TCG; empty leaves it to
	// qemu.DefaultTCGCPU. Under KVM the VM gets the host's CPU.
	TCGCPU platform.TCGCPU
}

// forBoot is what applies to a boot under b: Secure Boot is UEFI's only.
func (d Devices) forBoot(b platform.Boot) Devices {
	d.SecureBoot = d.SecureBoot || d.SecureBootVars != ""
	if b != platform.BootUEFI {
		d.SecureBoot, d.SecureBootVars = false, ""
	}
	return d
}

// Report is the outcome of one boot.
type Report struct {
	Results []manifest.TestResult
	Health  manifest.Health
}

// Failure returns what failed in the boot, or nil when everything passed.
func (r *Report) Failure() *Failure {
	var failed []manifest.TestResult
	for _, t := range r.Results {
		if t.Status != manifest.Pass {
			failed = append(failed, t)
		}
	}
	if len(failed) == 0 && len(r.Health.Problems) == 0 {
		return nil
	}
	var problems []string
	for _, p := range r.Health.Problems {
		problems = append(problems, string(r.Health.Firmware)+": "+p)
	}
	return &Failure{Failed: failed, Health: problems}
}

// Failure is returned when an image booted but failed its tests or health
// checks.
type Failure struct {
	Failed  []manifest.TestResult
	Health  []string // failed base checks, "firmware: problem"
	LogsDir string   // where the build kept its logs
	Kept    string   // with --on-error=keep: what was kept and how to get in
}

func (e *Failure) Error() string {
	var parts []string
	for _, t := range e.Failed {
		parts = append(parts, fmt.Sprintf("test %q failed (exit code %d)", t.Name, t.ExitCode))
	}
	parts = append(parts, e.Health...)
	msg := strings.Join(parts, "; ")
	if e.LogsDir != "" {
		msg += "\nlogs: " + e.LogsDir
	}
	if e.Kept != "" {
		msg += "\n" + e.Kept
	}
	return msg
}

// Suite is several boots of one image: one per firmware in Boots, each
// with the same tests, its console in Consoles[firmware].
type Suite struct {
	Image, Name, Version string
	// ImageSHA256 is the image's sha256 when the caller has it (a build's
	// disk stage does); empty: Run hashes the image first. Either way the
	// image must hash the same after the boots.
	ImageSHA256 string
	RootOffset  uint64
	Boots       []platform.Boot
	Consoles    map[platform.Boot]string
	Tests       []components.Step
	SkipHealth  []string
	Profile     bool    // see Request.Profile
	UserData    []byte  // cloud-init user-data for every boot, as in Request
	Devices     Devices // Secure Boot applies to the UEFI boot only
	WorkDir     string
	Log         io.Writer
	// Booted, when set, is called after each boot with its report (the
	// build's progress line and JUnit file).
	Booted func(b platform.Boot, r *Report) error
}

// Outcome is what a Suite found. Failure is nil when every boot passed.
type Outcome struct {
	Results []manifest.TestResult `json:"tests"`
	Health  []manifest.Health     `json:"health"`
	Failure *Failure              `json:"-"`
}

// Run boots the image under each firmware with the tests injected into a
// throwaway copy, and proves by its sha256 that the image itself did not
// change. The boots run at once when the host has a core for every vCPU
// of every boot (Concurrent), else one after another; either way the
// reports, and the calls to Booted, come in the order of s.Boots.
func Run(ctx context.Context, s Suite) (*Outcome, error) {
	if s.Log == nil {
		s.Log = io.Discard
	}
	before := s.ImageSHA256
	if before == "" {
		var err error
		if before, err = sparse.SHA256(s.Image); err != nil {
			return nil, err
		}
	}
	out := &Outcome{Results: []manifest.TestResult{}, Health: []manifest.Health{}}
	var failed []*Failure
	record := func(b platform.Boot, rep *Report) error {
		out.Results = append(out.Results, rep.Results...)
		out.Health = append(out.Health, rep.Health)
		if f := rep.Failure(); f != nil {
			failed = append(failed, f)
		}
		if s.Booted != nil {
			return s.Booted(b, rep)
		}
		return nil
	}
	_, atOnce, err := plan(ctx, len(s.Boots), s.Devices)
	if err != nil {
		return nil, err
	}
	if atOnce {
		reps, err := s.bootAll(ctx)
		if err != nil {
			return nil, err
		}
		for i, b := range s.Boots {
			if err := record(b, reps[i]); err != nil {
				return nil, err
			}
		}
	} else {
		for _, b := range s.Boots {
			rep, err := Boot(ctx, s.request(b, s.Log))
			if err != nil {
				return nil, err
			}
			if err := record(b, rep); err != nil {
				return nil, err
			}
		}
	}
	after, err := sparse.SHA256(s.Image)
	if err != nil {
		return nil, fmt.Errorf("reading the image back after the test: %w", err)
	}
	if after != before {
		return nil, fmt.Errorf("the image changed while it was tested (sha256 %s, then %s)", before, after)
	}
	if len(failed) > 0 {
		out.Failure = &Failure{}
		for _, f := range failed {
			out.Failure.Failed = append(out.Failure.Failed, f.Failed...)
			out.Failure.Health = append(out.Failure.Health, f.Health...)
		}
	}
	return out, nil
}

// Concurrent reports whether Run starts a suite's boots (n of them, vcpus
// each) at once on a host with cores cores: when every vCPU of every boot
// has a core of its own. Under TCG a vCPU keeps its core busy, and two
// one-vCPU guests on two cores each boot in about the time one takes
// alone (bench/vcpus.sh, docs/benchmarks.md), so a hybrid image's BIOS
// and UEFI boots together take about half the time they take in turn.
func Concurrent(n, vcpus, cores int) bool {
	return n > 1 && n*vcpus <= cores
}

// plan returns the vCPUs each of n boots with devices d gets, and whether
// Run starts the boots at once.
func plan(ctx context.Context, n int, d Devices) (vcpus int, atOnce bool, err error) {
	vcpus = d.CPUs
	if vcpus <= 0 {
		if vcpus, err = qemu.DefaultCPUs(qemu.DetectAccel(ctx)); err != nil {
			return 0, false, err
		}
	}
	return vcpus, Concurrent(n, vcpus, runtime.NumCPU()), nil
}

// BusyCores is how many cores n boots with devices d keep busy while Run
// boots them: one boot's vCPUs, or every boot's when they run at once. A
// build writes its outputs on the cores they leave.
func BusyCores(ctx context.Context, n int, d Devices) (int, error) {
	vcpus, atOnce, err := plan(ctx, n, d)
	if atOnce {
		vcpus *= n
	}
	return vcpus, err
}

// request is the Request of the suite's boot under b, logging to log.
func (s Suite) request(b platform.Boot, log io.Writer) Request {
	return Request{Image: s.Image, RootOffset: s.RootOffset, Firmware: b, Name: s.Name, Version: s.Version,
		Tests: s.Tests, WorkDir: s.WorkDir, ConsoleLog: s.Consoles[b], Log: log, SkipHealth: s.SkipHealth, Profile: s.Profile, UserData: s.UserData, Devices: s.Devices.forBoot(b)}
}

// bootAll runs the suite's boots at once and returns their reports in the
// order of s.Boots. Each boot's log lines are prefixed with its firmware
// ("[bios] "). The first boot to fail with an error (not a failed test)
// stops the others, and its error is the one returned.
func (s Suite) bootAll(ctx context.Context) ([]*Report, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	reps := make([]*Report, len(s.Boots))
	var mu sync.Mutex // serialises the boots' lines to s.Log, and first
	var first error
	var wg sync.WaitGroup
	for i, b := range s.Boots {
		wg.Add(1)
		go func() {
			defer wg.Done()
			log := &prefixedLines{mu: &mu, w: s.Log, prefix: "[" + string(b) + "] "}
			rep, err := Boot(ctx, s.request(b, log))
			log.flush()
			if err != nil {
				mu.Lock()
				if first == nil {
					first = err
				}
				mu.Unlock()
				cancel()
				return
			}
			reps[i] = rep
		}()
	}
	wg.Wait()
	if first != nil {
		return nil, first
	}
	return reps, nil
}

// prefixedLines writes whole lines to w, each with prefix, under mu, so
// that the lines of boots running at once do not mix.
type prefixedLines struct {
	mu      *sync.Mutex
	w       io.Writer
	prefix  string
	partial []byte
}

func (p *prefixedLines) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.partial = append(p.partial, b...)
	for {
		i := bytes.IndexByte(p.partial, '\n')
		if i < 0 {
			return len(b), nil
		}
		if _, err := fmt.Fprintf(p.w, "%s%s", p.prefix, p.partial[:i+1]); err != nil {
			return len(b), err
		}
		p.partial = p.partial[i+1:]
	}
}

// flush writes what is left of a last line without its newline.
func (p *prefixedLines) flush() {
	if len(p.partial) > 0 {
		_, _ = p.Write([]byte("\n"))
	}
}

// bootBudget bounds the time from QEMU start to multi-user.target.
const bootBudget = 5 * time.Minute

// KernelPanic is how a Linux kernel's panic starts on the console. A
// Debian kernel waits forever after one (panic=0), so every test boot
// stops StopGrace after it instead of sitting out its budget.
const KernelPanic = "Kernel panic - not syncing"

// StopGrace is how long a test boot goes on after a string it stops on
// (KernelPanic, a Secure Boot refusal) shows on the console: the panic's
// reason and call trace follow its first line.
const StopGrace = 3 * time.Second

// Boot boots a throwaway copy of an image with the test harness injected
// into its root filesystem and collects the results of that one boot.
//
// A guest with more than one vCPU under TCG whose kernel oopses on int3
// (see Int3Oops) is booted once more, from a fresh copy, with one vCPU; the
// first boot's console is kept beside the second's (serial.int3.log) and
// the log says why.
func Boot(ctx context.Context, t Request) (*Report, error) {
	out, oops, err := bootOnce(ctx, t)
	if err != nil || oops == "" || ctx.Err() != nil {
		return out, err
	}
	fmt.Fprintf(t.Log, "the guest kernel stopped on int3 with %d vCPUs under TCG (%q): QEMU's multi-threaded TCG can let one vCPU run code the other is patching, a race in QEMU rather than in the image; booting a fresh copy again with one vCPU\n", out.Health.VCPUs, oops)
	if t.ConsoleLog != "" {
		if err := os.Rename(t.ConsoleLog, Int3ConsoleLog(t.ConsoleLog)); err != nil {
			return nil, err
		}
	}
	t.Devices.CPUs = 1
	out, _, err = bootOnce(ctx, t)
	return out, err
}

// Int3Oops returns the guest kernel's oops line for a breakpoint trap in
// kernel code ("int3: 0000 [#1] ...", after "Oops: " since Linux 6.10) among
// lines of its console or log, or "". Under multi-threaded TCG (more than
// one vCPU) QEMU can let a vCPU execute a breakpoint the kernel has already
// removed while patching its own code (jump labels, static calls): the
// kernel then finds no patch site for it and oopses. Kiln's CI met it once
// with QEMU 7.2, and it was reported upstream with 8.0; one vCPU cannot meet
// it, and neither can KVM.
func Int3Oops(lines []string) string {
	for _, l := range lines {
		if strings.Contains(l, "int3: 0000 [#") {
			return strings.TrimSpace(ansiEscape.ReplaceAllString(l, ""))
		}
	}
	return ""
}

// Int3ConsoleLog is where Boot keeps the console of a boot it repeated
// after an int3 oops: serial.log becomes serial.int3.log.
func Int3ConsoleLog(consoleLog string) string {
	return strings.TrimSuffix(consoleLog, ".log") + ".int3.log"
}

// bootOnce is one boot of Boot. It also returns Int3Oops of the boot's
// console and kernel log when the guest had more than one vCPU under TCG.
func bootOnce(ctx context.Context, t Request) (*Report, string, error) {
	t.Devices = t.Devices.forBoot(t.Firmware)
	suite := guest.Suite{Image: t.Name, Version: t.Version, Firmware: string(t.Firmware), BootTimeout: bootBudget, Tests: t.Tests, Profile: t.Profile, SecureBoot: t.SecureBoot}
	names := make([]string, len(t.Tests))
	total := bootBudget + time.Minute
	for i, s := range t.Tests {
		names[i] = s.Name
		total += s.Timeout + 10*time.Second
	}
	work, err := os.MkdirTemp(t.WorkDir, "test-"+string(t.Firmware)+"-")
	if err != nil {
		return nil, "", err
	}
	defer os.RemoveAll(work)
	bootDisk, bootFormat, err := prepareBootDisk(ctx, t.Image, work, t.GrowBy, func(raw string) error {
		if t.UserData != nil {
			if err := guest.CheckCloudInit(ctx, raw, t.RootOffset); err != nil {
				return err
			}
		}
		return guest.Inject(ctx, raw, t.RootOffset, suite, t.Log)
	})
	if err != nil {
		return nil, "", err
	}
	resultsPath := filepath.Join(t.WorkDir, "results-"+string(t.Firmware)+".log")
	opts := qemu.Options{
		Firmware:     qemu.BIOS,
		Disks:        []qemu.Disk{{Path: bootDisk, Format: bootFormat}},
		ConsoleLog:   t.ConsoleLog,
		ExtraSerials: []string{resultsPath},
		Timeout:      total,
	}
	if err := attachUserData(&opts, t.UserData, work); err != nil {
		return nil, "", err
	}
	if err := t.Devices.apply(&opts, t.Firmware, work); err != nil {
		return nil, "", err
	}
	opts.Accel = qemu.DetectAccel(ctx)
	opts.StopOn, opts.StopGrace = append(opts.StopOn, KernelPanic), StopGrace
	timed := guest.NewConsoleRecorder()
	opts.Console = timed
	if cmd, err := opts.Cmdline(); err == nil { // with the console on QEMU's stdout, as it runs
		fmt.Fprintf(t.Log, "+ %s\n", strings.Join(cmd, " "))
	}
	res, err := qemu.Run(ctx, opts)
	if err != nil {
		return nil, "", err
	}
	data, _ := os.ReadFile(resultsPath)
	console, _ := os.ReadFile(t.ConsoleLog)
	rep := guest.Parse(data, names)
	profile := guest.Profile(timed.Lines(), rep.Clocks)
	if t.Profile {
		if profile != nil {
			profile.SlowestUnits = rep.Units
		}
		if t.ConsoleLog != "" {
			if err := writeTimedConsole(TimedConsoleLog(t.ConsoleLog), timed.Lines()); err != nil {
				return nil, "", err
			}
			if err := os.WriteFile(HarnessLog(t.ConsoleLog), data, 0o644); err != nil {
				return nil, "", err
			}
		}
	}
	out := &Report{Health: manifest.Health{
		Firmware:      t.Firmware,
		MultiUser:     rep.TargetState == "active",
		FailedUnits:   rep.FailedUnits,
		ConsoleErrors: guest.KernelProblems(console, rep),
		Problems:      []string{},
		BootSeconds:   res.Duration.Seconds(),
		Accelerator:   opts.Accel,
		VCPUs:         res.CPUs,
		CPU:           res.CPU,
		Profile:       profile,
	}}
	if out.Health.ConsoleErrors == nil {
		out.Health.ConsoleErrors = []string{}
	}
	end := bootEnd{timedOut: res.TimedOut, budget: total, secureBoot: t.SecureBoot}
	switch res.StoppedOn {
	case "":
	case KernelPanic:
		end.panicked = consoleLine(console, KernelPanic)
	default:
		end.refused = consoleLine(console, res.StoppedOn)
	}
	evaluateHealth(&out.Health, rep, end, t.SkipHealth)
	ran := map[string]bool{}
	for _, r := range rep.Results {
		status := manifest.Fail
		if r.Passed {
			status = manifest.Pass
		}
		ran[r.Name] = true
		out.Results = append(out.Results, manifest.TestResult{Name: r.Name, Firmware: t.Firmware, Status: status, ExitCode: r.ExitCode,
			Seconds: r.Duration.Seconds(), Output: excerpt(r.Output, 2048)})
	}
	for _, n := range names {
		if !ran[n] {
			out.Results = append(out.Results, manifest.TestResult{Name: n, Firmware: t.Firmware, Status: manifest.Fail, ExitCode: -1, Output: "did not run"})
		}
	}
	if out.Results == nil {
		out.Results = []manifest.TestResult{}
	}
	var oops string
	if opts.Accel == "tcg" && res.CPUs > 1 {
		oops = Int3Oops(append(strings.Split(string(console), "\n"), rep.Kernel...))
	}
	return out, oops, nil
}

// TimedConsoleLog is where a profiled boot keeps its console with the time
// each line arrived (see guest.WriteTimedConsole): serial.log becomes
// serial.timed.log.
func TimedConsoleLog(consoleLog string) string {
	return strings.TrimSuffix(consoleLog, ".log") + ".timed.log"
}

// HarnessLog is where a profiled boot keeps what the guest's test runner
// printed on ttyS1 (see guest.Parse): serial.log becomes serial.harness.log.
func HarnessLog(consoleLog string) string {
	return strings.TrimSuffix(consoleLog, ".log") + ".harness.log"
}

func writeTimedConsole(path string, lines []guest.ConsoleLine) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := guest.WriteTimedConsole(f, lines); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// attachUserData gives cloud-init user-data to the guest: a NoCloud seed
// (an ISO 9660 labelled cidata, with a fresh instance-id so cloud-init
// applies it) written into work and attached as a read-only disk after
// the boot disk. Nothing is attached without user-data.
func attachUserData(o *qemu.Options, userData []byte, work string) error {
	if userData == nil {
		return nil
	}
	seed := filepath.Join(work, "cidata.iso")
	if err := nocloud.Write(seed, nocloud.Seed{UserData: userData, InstanceID: nocloud.NewInstanceID()}); err != nil {
		return err
	}
	o.Disks = append(o.Disks, qemu.Disk{Path: seed, Format: "raw", ReadOnly: true})
	return nil
}

func excerpt(s string, max int) string {
	if len(s) <= max {
		return s
	}
	return "…" + s[len(s)-max:]
}

// WriteJUnit writes the results as JUnit XML (tests.xml), which CI systems display.
func WriteJUnit(path, suite string, results []manifest.TestResult, health []manifest.Health) error {
	type failure struct {
		Message string `xml:"message,attr"`
		Text    string `xml:",chardata"`
	}
	type skipped struct {
		Message string `xml:"message,attr"`
	}
	type testcase struct {
		Name      string   `xml:"name,attr"`
		Classname string   `xml:"classname,attr"`
		Time      float64  `xml:"time,attr"`
		Failure   *failure `xml:"failure,omitempty"`
		Skipped   *skipped `xml:"skipped,omitempty"`
		SystemOut string   `xml:"system-out,omitempty"`
	}
	type testsuite struct {
		XMLName  xml.Name   `xml:"testsuite"`
		Name     string     `xml:"name,attr"`
		Tests    int        `xml:"tests,attr"`
		Failures int        `xml:"failures,attr"`
		Skipped  int        `xml:"skipped,attr"`
		Cases    []testcase `xml:"testcase"`
	}
	ts := testsuite{Name: suite}
	for _, h := range health {
		for _, hc := range h.Checks {
			c := testcase{Name: "health/" + hc.Name, Classname: suite + "." + string(h.Firmware)}
			switch hc.Status {
			case manifest.Fail:
				c.Failure = &failure{Message: "base health check failed", Text: hc.Detail}
			case manifest.Skipped:
				c.Skipped = &skipped{Message: "skipped by the recipe (skip_health)"}
				c.SystemOut = hc.Detail
			}
			if hc.Name == checkFinished {
				c.Time = h.BootSeconds
			}
			ts.Cases = append(ts.Cases, c)
		}
	}
	for _, r := range results {
		c := testcase{Name: r.Name, Classname: suite + "." + string(r.Firmware), Time: r.Seconds, SystemOut: r.Output}
		if r.Status != manifest.Pass {
			c.Failure = &failure{Message: fmt.Sprintf("exit code %d", r.ExitCode), Text: r.Output}
		}
		ts.Cases = append(ts.Cases, c)
	}
	for _, c := range ts.Cases {
		ts.Tests++
		if c.Failure != nil {
			ts.Failures++
		}
		if c.Skipped != nil {
			ts.Skipped++
		}
	}
	data, err := xml.MarshalIndent(ts, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append([]byte(xml.Header), append(data, '\n')...), 0o644)
}
