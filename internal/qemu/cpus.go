package qemu

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
)

// CPUsEnv names the environment variable that sets how many vCPUs a guest
// gets when its Options leave CPUs at 0.
const CPUsEnv = "KILN_VCPUS"

// MaxCPUs bounds KILN_VCPUS and kiln's --vcpus: QEMU's q35 takes far
// more, but a test VM never needs them.
const MaxCPUs = 64

// numCPU is the host's core count; a variable so that tests can set it.
var numCPU = runtime.NumCPU

// DefaultCPUs is how many vCPUs a guest gets under accel when Options.CPUs
// is 0: KILN_VCPUS if it is set, else two under KVM, and under TCG two on a
// host with at least four cores, one otherwise.
//
// Under TCG each vCPU is a host thread (multi-threaded TCG). Measured on a
// 2-core host (bench/vcpus.sh, docs/benchmarks.md): one boot alone reached
// multi-user.target in 26 s with two vCPUs against 41 s with one, but two
// boots at once took 49 and 50 s with two vCPUs each against 38 and 40 s
// with one each, and 40 and 49 s with two and one. A guest therefore gets a
// second vCPU only where two test VMs at once, which parallel builds and CI
// run, still find a core for every vCPU. A guest with more than one vCPU under TCG can meet QEMU's
// cross-modifying-code race (see boottest.Int3Oops); the test harness
// boots again with one when it does.
func DefaultCPUs(accel string) (int, error) {
	if v := os.Getenv(CPUsEnv); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > MaxCPUs {
			return 0, fmt.Errorf("%s=%q: want a whole number of vCPUs from 1 to %d", CPUsEnv, v, MaxCPUs)
		}
		return n, nil
	}
	if accel == "tcg" && numCPU() < 4 {
		return 1, nil
	}
	return 2, nil
}
