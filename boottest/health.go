package boottest

import (
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/kiln-build/kiln/internal/guest"
	"github.com/kiln-build/kiln/manifest"
)

// checkFinished is the one check no recipe can skip: without it no other
// result can be trusted.
const checkFinished = "finished"

// bootEnd is how a boot ended, as far as the health checks care.
type bootEnd struct {
	timedOut   bool
	budget     time.Duration
	refused    string // the firmware's console line refusing the boot loader under Secure Boot
	panicked   string // the guest kernel's panic line
	secureBoot bool   // booted under Secure Boot firmware: the secure-boot check applies
}

// evaluateHealth fills h.Checks and h.Problems from what the guest reported.
// Checks named in skip are recorded as skipped and never fail the boot.
func evaluateHealth(h *manifest.Health, rep guest.Report, end bootEnd, skip []string) {
	skipped := map[string]bool{}
	for _, s := range skip {
		skipped[s] = true
	}
	add := func(name string, failed bool, detail string) {
		c := manifest.HealthCheck{Name: name, Status: "pass"}
		switch {
		case name != checkFinished && skipped[name]:
			c.Status = "skipped"
			if failed {
				c.Detail = "skipped by the recipe; would have failed: " + detail
			}
		case failed:
			c.Status, c.Detail = "fail", detail
			h.Problems = append(h.Problems, detail)
		}
		h.Checks = append(h.Checks, c)
	}
	switch {
	case end.panicked != "":
		add(checkFinished, true, fmt.Sprintf("the guest kernel panicked (%q on the console; the call trace is in serial.log): the boot was stopped there instead of waiting out its %s budget", end.panicked, end.budget))
	case end.refused != "":
		add(checkFinished, true, fmt.Sprintf("the firmware refused to start the boot loader under Secure Boot (%q on the console): the image's EFI binaries are not signed by a key in the firmware's db", end.refused))
	case end.timedOut:
		add(checkFinished, true, fmt.Sprintf("the guest did not finish within %s (see serial.log)", end.budget))
	case !rep.Finished:
		add(checkFinished, true, "the guest stopped before the test runner finished (see serial.log)")
	default:
		add(checkFinished, false, "")
	}
	switch {
	case h.MultiUser:
		add("multi-user", false, "")
	case rep.TargetState != "":
		add("multi-user", true, fmt.Sprintf("multi-user.target was not reached (state %q)", rep.TargetState))
	default:
		add("multi-user", true, "multi-user.target was not reached (the test runner never reported it)")
	}
	add("failed-units", rep.FailedUnits != "", "failed systemd units:\n"+rep.FailedUnits)
	add("kernel-errors", len(h.ConsoleErrors) > 0, "kernel problems on the console or in the kernel's log:\n"+strings.Join(h.ConsoleErrors, "\n"))
	if end.secureBoot {
		switch rep.SecureBoot {
		case "1":
			add("secure-boot", false, "")
		case "":
			add("secure-boot", true, "the test runner never reported the SecureBoot EFI variable")
		case "absent":
			add("secure-boot", true, "the guest has no SecureBoot EFI variable: it did not boot under UEFI, or efivarfs is not mounted")
		default:
			add("secure-boot", true, fmt.Sprintf("the guest's SecureBoot EFI variable is %s, not 1: Secure Boot is not enforced", rep.SecureBoot))
		}
	}
}

// consoleLine returns the console's last line holding s (without ANSI
// escapes), or s itself.
func consoleLine(console []byte, s string) string {
	lines := strings.Split(string(console), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if strings.Contains(lines[i], s) {
			l := ansiEscape.ReplaceAllString(lines[i], "")
			return strings.TrimSpace(strings.ReplaceAll(l, "\r", ""))
		}
	}
	return s
}

var ansiEscape = regexp.MustCompile(`\x1b\[[0-9;=?]*[A-Za-z]`)
