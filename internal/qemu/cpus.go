package qemu

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"

	"github.com/kiln-build/kiln/platform"
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

// TCGCPUEnv names the environment variable that chooses the CPU a guest
// gets under TCG when its Options leave TCGCPU empty.
const TCGCPUEnv = "KILN_TCG_CPU"

// tcgCPUs maps each level to its -cpu value. QEMU 7.2, Debian 12's, has no
// named x86-64-vN models, so the v2 level is built on qemu64.
//
// The default is x86-64-v2-aes because it boots faster under TCG: measured
// with bench/tcg-cpu.sh (docs/benchmarks.md), the minimal example reached
// multi-user.target in 0.91 and 0.94 of max's time in two runs (35.1
// against 38.6 s, 33.6 against 35.7 s). The
// likely reasons, both emulated instruction by instruction: with max the
// guest's kernel saves and restores 2.7 KB of XSAVE state (AVX, MPX, PKRU)
// at each context switch instead of 512 bytes with FXSAVE, and glibc picks
// its AVX2 string functions.
//
// max: 5-level paging off, because a trixie kernel (6.12) using LA57
// under TCG panicked in early boot now and then (a corrupt slab freelist,
// seen once in CI), and the guest needs no 57-bit addresses. Neither level
// has the virtualisation extensions: udev would load kvm and kvm_amd for
// them at every boot (a few seconds under TCG), for a nested hypervisor no
// test runs.
var tcgCPUs = map[platform.TCGCPU]string{
	platform.TCGCPUv2AES: "qemu64,svm=off,+ssse3,+sse4.1,+sse4.2,+popcnt,+aes,+pclmulqdq",
	platform.TCGCPUMax:   "max,la57=off,svm=off,vmx=off",
}

// CheckTCGCPU returns an error naming the levels when level is not one.
func CheckTCGCPU(level platform.TCGCPU) error {
	if level.Valid() {
		return nil
	}
	names := make([]string, len(platform.TCGCPUs))
	for i, c := range platform.TCGCPUs {
		names[i] = string(c)
	}
	return fmt.Errorf("unknown TCG CPU level %q: want %s", level, strings.Join(names, " or "))
}

// DefaultTCGCPU is the level a guest gets under TCG when Options.TCGCPU is
// empty: KILN_TCG_CPU if it is set, else x86-64-v2-aes.
func DefaultTCGCPU() (platform.TCGCPU, error) {
	if v := platform.TCGCPU(os.Getenv(TCGCPUEnv)); v != "" {
		if err := CheckTCGCPU(v); err != nil {
			return "", fmt.Errorf("%s: %w", TCGCPUEnv, err)
		}
		return v, nil
	}
	return platform.TCGCPUv2AES, nil
}
