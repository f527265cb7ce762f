package qemu

import (
	"slices"
	"testing"

	"github.com/stretchr/testify/require"
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
