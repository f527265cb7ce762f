package qemu

import (
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kiln-build/kiln/platform"
)

// withCores makes the host look like it has n cores for one test.
func withCores(t *testing.T, n int) {
	old := numCPU
	numCPU = func() int { return n }
	t.Cleanup(func() { numCPU = old })
}

func TestDefaultCPUs(t *testing.T) {
	t.Setenv(CPUsEnv, "")
	for _, c := range []struct {
		accel string
		cores int
		want  int
	}{
		{"tcg", 1, 1}, {"tcg", 2, 1}, {"tcg", 3, 1}, {"tcg", 4, 2}, {"tcg", 64, 2},
		{"kvm", 1, 2}, {"kvm", 2, 2}, {"kvm", 16, 2},
	} {
		withCores(t, c.cores)
		n, err := DefaultCPUs(c.accel)
		require.NoError(t, err)
		require.Equal(t, c.want, n, "%s on %d cores", c.accel, c.cores)
	}
}

func TestDefaultCPUsFromTheEnvironment(t *testing.T) {
	withCores(t, 2)
	t.Setenv(CPUsEnv, "3")
	for _, accel := range []string{"tcg", "kvm"} {
		n, err := DefaultCPUs(accel)
		require.NoError(t, err)
		require.Equal(t, 3, n, accel)
	}
	argv, err := Options{Accel: "tcg", Disks: []Disk{{Path: "/img/a.raw", Format: "raw"}}}.Cmdline()
	require.NoError(t, err)
	require.Equal(t, "3", argv[slices.Index(argv, "-smp")+1])
	// an explicit count wins over the environment
	argv, err = Options{Accel: "tcg", CPUs: 1, Disks: []Disk{{Path: "/img/a.raw", Format: "raw"}}}.Cmdline()
	require.NoError(t, err)
	require.Equal(t, "1", argv[slices.Index(argv, "-smp")+1])

	for _, bad := range []string{"0", "-1", "two", "1.5", "65"} {
		t.Setenv(CPUsEnv, bad)
		_, err := DefaultCPUs("tcg")
		require.ErrorContains(t, err, `KILN_VCPUS="`+bad+`": want a whole number of vCPUs from 1 to 64`)
		_, err = Options{Accel: "tcg", Disks: []Disk{{Path: "/img/a.raw", Format: "raw"}}}.Cmdline()
		require.ErrorContains(t, err, "KILN_VCPUS")
	}
}

func TestTCGCPULevels(t *testing.T) {
	t.Setenv(TCGCPUEnv, "")
	disk := []Disk{{Path: "/img/a.raw", Format: "raw"}}
	cpuOf := func(o Options) string {
		t.Helper()
		argv, err := o.Cmdline()
		require.NoError(t, err)
		return argv[slices.Index(argv, "-cpu")+1]
	}
	l, err := DefaultTCGCPU()
	require.NoError(t, err)
	require.Equal(t, platform.TCGCPUv2AES, l)
	require.Equal(t, []platform.TCGCPU{"x86-64-v2-aes", "max"}, platform.TCGCPUs)
	for _, l := range platform.TCGCPUs {
		require.NotEmpty(t, tcgCPUs[l], "every level has a -cpu value")
	}
	v2 := cpuOf(Options{Accel: "tcg", Disks: disk})
	// x86-64-v2 and AES-NI, nothing that needs XSAVE, no nested virtualisation
	for _, f := range []string{"+ssse3", "+sse4.1", "+sse4.2", "+popcnt", "+aes", "+pclmulqdq", "svm=off"} {
		require.Contains(t, strings.Split(v2, ","), f)
	}
	require.True(t, strings.HasPrefix(v2, "qemu64,"), v2)
	require.Equal(t, "max,la57=off,svm=off,vmx=off", cpuOf(Options{Accel: "tcg", TCGCPU: platform.TCGCPUMax, Disks: disk}))
	// KVM gets the host's CPU whatever the level
	require.Equal(t, "host", cpuOf(Options{Accel: "kvm", TCGCPU: platform.TCGCPUMax, Disks: disk}))

	// the environment chooses when the options do not; an explicit level wins
	t.Setenv(TCGCPUEnv, "max")
	require.Equal(t, tcgCPUs[platform.TCGCPUMax], cpuOf(Options{Accel: "tcg", Disks: disk}))
	require.Equal(t, tcgCPUs[platform.TCGCPUv2AES], cpuOf(Options{Accel: "tcg", TCGCPU: platform.TCGCPUv2AES, Disks: disk}))

	for _, bad := range []string{"host", "qemu64", "MAX", "x86-64-v3"} {
		t.Setenv(TCGCPUEnv, bad)
		_, err := DefaultTCGCPU()
		require.EqualError(t, err, `KILN_TCG_CPU: unknown TCG CPU level "`+bad+`": want x86-64-v2-aes or max`)
		_, err = Options{Accel: "tcg", Disks: disk}.Cmdline()
		require.ErrorContains(t, err, "KILN_TCG_CPU")
		t.Setenv(TCGCPUEnv, "")
		_, err = Options{Accel: "tcg", TCGCPU: platform.TCGCPU(bad), Disks: disk}.Cmdline()
		require.EqualError(t, err, `unknown TCG CPU level "`+bad+`": want x86-64-v2-aes or max`)
	}
}
