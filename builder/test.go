package builder

import (
	"context"
	"encoding/xml"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/kiln-build/kiln/internal/guest"
	"github.com/kiln-build/kiln/internal/qemu"
)

// TestRequest describes one test boot of a raw image.
type TestRequest struct {
	Image      string // raw, qcow2, VMDK, VHD or VHDX; never modified (see prepareBootDisk)
	RootOffset uint64 // byte offset of the ext4 root partition
	Firmware   string // uefi | bios
	Name       string
	Version    string
	Tests      []Step
	WorkDir    string
	ConsoleLog string
	Log        io.Writer
	// GrowBy enlarges the throwaway copy, as a bigger cloud disk would:
	// images grow their root filesystem to fill it at boot.
	GrowBy uint64
	// SkipHealth names base health checks (recipes.HealthChecks) that are
	// recorded as skipped instead of failing the boot.
	SkipHealth []string
}

// TestReport is the outcome of one test boot.
type TestReport struct {
	Results []TestResult
	Health  Health
}

func (r *TestReport) failure() *TestFailure {
	var failed []TestResult
	for _, t := range r.Results {
		if t.Status != "pass" {
			failed = append(failed, t)
		}
	}
	if len(failed) == 0 && len(r.Health.Problems) == 0 {
		return nil
	}
	var problems []string
	for _, p := range r.Health.Problems {
		problems = append(problems, r.Health.Firmware+": "+p)
	}
	return &TestFailure{Failed: failed, Health: problems}
}

// bootBudget bounds the time from QEMU start to multi-user.target.
const bootBudget = 5 * time.Minute

// TestImage boots a throwaway copy of a raw image with the test harness
// injected into its root filesystem and collects the results.
func TestImage(ctx context.Context, t TestRequest) (*TestReport, error) {
	suite := guest.Suite{Image: t.Name, Version: t.Version, Firmware: t.Firmware, BootTimeout: bootBudget}
	names := make([]string, len(t.Tests))
	total := bootBudget + time.Minute
	for i, s := range t.Tests {
		suite.Tests = append(suite.Tests, guest.Test{Name: s.Name, Script: s.Script, Timeout: s.Timeout, Env: s.Env})
		names[i] = s.Name
		total += s.Timeout + 10*time.Second
	}
	work, err := os.MkdirTemp(t.WorkDir, "test-"+t.Firmware+"-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(work)
	bootDisk, bootFormat, err := prepareBootDisk(ctx, t.Image, work, t.GrowBy, func(raw string) error {
		return guest.Inject(ctx, raw, t.RootOffset, suite, t.Log)
	})
	if err != nil {
		return nil, err
	}
	resultsPath := filepath.Join(t.WorkDir, "results-"+t.Firmware+".log")
	opts := qemu.Options{
		Firmware:     qemu.BIOS,
		Disks:        []qemu.Disk{{Path: bootDisk, Format: bootFormat}},
		ConsoleLog:   t.ConsoleLog,
		ExtraSerials: []string{resultsPath},
		Timeout:      total,
	}
	if t.Firmware == "uefi" {
		opts.Firmware = qemu.UEFI
		opts.VarsFile = filepath.Join(work, "vars-uefi.fd")
	}
	opts.Accel = qemu.DetectAccel(ctx)
	if cmd, err := opts.Cmdline(); err == nil {
		fmt.Fprintf(t.Log, "+ %s\n", strings.Join(cmd, " "))
	}
	res, err := qemu.Run(ctx, opts)
	if err != nil {
		return nil, err
	}
	data, _ := os.ReadFile(resultsPath)
	console, _ := os.ReadFile(t.ConsoleLog)
	rep := guest.Parse(data, names)
	out := &TestReport{Health: Health{
		Firmware:      t.Firmware,
		MultiUser:     rep.TargetState == "active",
		FailedUnits:   rep.FailedUnits,
		ConsoleErrors: guest.ConsoleProblems(console),
		Problems:      []string{},
		BootSeconds:   res.Duration.Seconds(),
		Accelerator:   opts.Accel,
	}}
	if out.Health.ConsoleErrors == nil {
		out.Health.ConsoleErrors = []string{}
	}
	evaluateHealth(&out.Health, rep, res.TimedOut, total, t.SkipHealth)
	ran := map[string]bool{}
	for _, r := range rep.Results {
		status := "fail"
		if r.Passed {
			status = "pass"
		}
		ran[r.Name] = true
		out.Results = append(out.Results, TestResult{Name: r.Name, Firmware: t.Firmware, Status: status, ExitCode: r.ExitCode,
			Seconds: r.Duration.Seconds(), Output: excerpt(r.Output, 2048)})
	}
	for _, n := range names {
		if !ran[n] {
			out.Results = append(out.Results, TestResult{Name: n, Firmware: t.Firmware, Status: "fail", ExitCode: -1, Output: "did not run"})
		}
	}
	if out.Results == nil {
		out.Results = []TestResult{}
	}
	return out, nil
}

func excerpt(s string, max int) string {
	if len(s) <= max {
		return s
	}
	return "…" + s[len(s)-max:]
}

// writeJUnit writes the results as JUnit XML, which CI systems display.
func writeJUnit(path, suite string, results []TestResult, health []Health) error {
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
			c := testcase{Name: "health/" + hc.Name, Classname: suite + "." + h.Firmware}
			switch hc.Status {
			case "fail":
				c.Failure = &failure{Message: "base health check failed", Text: hc.Detail}
			case "skipped":
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
		c := testcase{Name: r.Name, Classname: suite + "." + r.Firmware, Time: r.Seconds, SystemOut: r.Output}
		if r.Status != "pass" {
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
