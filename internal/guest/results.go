package guest

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"strconv"
	"strings"
	"time"

	"github.com/kiln-build/kiln/manifest"
)

// Result is the outcome of one test.
type Result struct {
	Name     string
	ExitCode int
	Duration time.Duration
	Output   string
	Passed   bool
}

// Report is what the runner printed.
type Report struct {
	Finished    bool   // the runner reached its end
	TargetState string // state of multi-user.target ("active" when reached)
	FailedUnits string // systemctl --failed output, empty when none failed
	// SecureBoot is the value of the guest's SecureBoot EFI variable: "1"
	// when the firmware enforces Secure Boot, "0" when not, "absent" when
	// there is none (BIOS), "" when the runner did not say.
	SecureBoot string
	Results    []Result
	Kernel     []string            // problem lines of the kernel's log once the tests ran (KILN-KERNEL)
	Clocks     BootClocks          // the boot's milestones on the guest's clocks (KILN-BOOT)
	Units      []manifest.UnitTime // the slowest units, slowest first (KILN-UNITS, with Suite.Profile)
}

// Parse reads the runner's ttyS1 output. names maps the test index to its name.
func Parse(data []byte, names []string) Report {
	var r Report
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), "\r")
		// The serial line may carry noise before the first frame.
		if i := strings.Index(line, "KILN-"); i > 0 {
			line = line[i:]
		}
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		switch f[0] {
		case "KILN-STATE":
			if len(f) >= 2 {
				r.TargetState = f[1]
			}
		case "KILN-BOOT":
			r.Clocks = parseBootClocks(string(payload(f)))
		case "KILN-KERNEL":
			r.Kernel = ConsoleProblems(payload(f))
		case "KILN-UNITS":
			r.Units = parseBlame(string(payload(f)))
		case "KILN-SECURE-BOOT":
			if len(f) >= 2 {
				r.SecureBoot = f[1]
			}
		case "KILN-FAILED-UNITS":
			r.FailedUnits = strings.TrimSpace(string(payload(f)))
		case "KILN-TEST":
			if len(f) < 4 {
				continue
			}
			idx, err1 := strconv.Atoi(f[1])
			rc, err2 := strconv.Atoi(f[2])
			ms, err3 := strconv.ParseInt(f[3], 10, 64)
			if err1 != nil || err2 != nil || err3 != nil {
				continue
			}
			res := Result{ExitCode: rc, Duration: time.Duration(ms) * time.Millisecond, Passed: rc == 0}
			if idx >= 0 && idx < len(names) {
				res.Name = names[idx]
			} else {
				res.Name = "test-" + f[1]
			}
			if len(f) >= 5 {
				b, _ := base64.StdEncoding.DecodeString(f[4])
				res.Output = string(b)
			}
			r.Results = append(r.Results, res)
		case "KILN-DONE":
			r.Finished = true
		}
	}
	return r
}

// kernelProblemPattern marks a kernel panic, oops, BUG or call trace, as a
// grep -E pattern of plain strings.
const kernelProblemPattern = "Kernel panic|Oops:|BUG:|Call Trace:"

var kernelProblems = strings.Split(kernelProblemPattern, "|")

// payload decodes a frame's base64 field; a missing or damaged one is empty.
func payload(f []string) []byte {
	if len(f) < 2 {
		return nil
	}
	b, _ := base64.StdEncoding.DecodeString(f[1])
	return b
}

// ConsoleProblems returns lines of a serial console log (or of the kernel's
// log) that show a kernel panic, oops, BUG or call trace.
func ConsoleProblems(console []byte) []string {
	var out []string
	for _, line := range strings.Split(string(console), "\n") {
		for _, marker := range kernelProblems {
			if strings.Contains(line, marker) {
				out = append(out, strings.TrimSpace(line))
				break
			}
		}
	}
	return out
}

// KernelProblems are the problem lines of the console and those of the
// kernel's log the guest reported, which has what a quiet console did not
// print, each once.
func KernelProblems(console []byte, r Report) []string {
	out := ConsoleProblems(console)
	seen := map[string]bool{}
	for _, l := range out {
		seen[CleanConsoleLine(l)] = true
	}
	for _, l := range r.Kernel {
		if !seen[l] {
			seen[l] = true
			out = append(out, l)
		}
	}
	return out
}
