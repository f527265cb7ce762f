package boottest

import (
	"fmt"
	"strings"
	"time"

	"github.com/kiln-build/kiln/internal/guest"
	"github.com/kiln-build/kiln/manifest"
)

// checkFinished is the one check no recipe can skip: without it no other
// result can be trusted.
const checkFinished = "finished"

// evaluateHealth fills h.Checks and h.Problems from what the guest reported.
// Checks named in skip are recorded as skipped and never fail the boot.
func evaluateHealth(h *manifest.Health, rep guest.Report, timedOut bool, budget time.Duration, skip []string) {
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
	case timedOut:
		add(checkFinished, true, fmt.Sprintf("the guest did not finish within %s (see serial.log)", budget))
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
}
