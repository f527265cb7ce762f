package formats

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestVMDKBenchAgainstQemu times Kiln's VMDK writers against qemu-img
// convert on the raw image named by KILN_VMDK_BENCH, in alternating runs
// (KILN_VMDK_BENCH_RUNS, default 3), and logs medians and sizes. It
// asserts nothing about time.
//
//	KILN_VMDK_BENCH=/path/disk.raw go test -v -run VMDKBench ./formats/
func TestVMDKBenchAgainstQemu(t *testing.T) {
	raw := os.Getenv("KILN_VMDK_BENCH")
	if raw == "" {
		t.Skip("set KILN_VMDK_BENCH to a raw image to run")
	}
	runs := 3
	if n, err := strconv.Atoi(os.Getenv("KILN_VMDK_BENCH_RUNS")); err == nil && n > 0 {
		runs = n
	}
	dir := t.TempDir()
	src, err := OpenRaw(raw)
	require.NoError(t, err)
	defer src.Close()
	// Warm the page cache so that neither side pays for the first read.
	require.NoError(t, exec.Command("cat", raw).Run())

	for _, sub := range []string{vmdkStreamOptimized, vmdkMonolithicSparse} {
		var kt, qt, kc, qc []time.Duration
		ours, ref := filepath.Join(dir, "kiln.vmdk"), filepath.Join(dir, "qemu.vmdk")
		for i := 0; i < runs; i++ {
			os.Remove(ours)
			os.Remove(ref)
			c0 := vmdkCPU()
			start := time.Now()
			f, err := os.Create(ours)
			require.NoError(t, err)
			require.NoError(t, WriteVMDK(context.Background(), f, src, Options{Subformat: sub}))
			require.NoError(t, f.Close())
			kt = append(kt, time.Since(start))
			kc = append(kc, vmdkCPU()-c0)

			start = time.Now()
			cmd := exec.Command("qemu-img", "convert", "-f", "raw", "-O", "vmdk", "-o", "subformat="+sub, raw, ref)
			out, err := cmd.CombinedOutput()
			require.NoError(t, err, "%s", out)
			qt = append(qt, time.Since(start))
			qc = append(qc, cmd.ProcessState.UserTime()+cmd.ProcessState.SystemTime())
		}
		median := func(d []time.Duration) time.Duration { slices.Sort(d); return d[len(d)/2] }
		k, q := median(kt), median(qt)
		t.Logf("%s: wall kiln %v (runs %v), qemu-img %v (runs %v), speedup %.2fx; CPU kiln %v, qemu-img %v; size kiln %d, qemu-img %d (%.4f)",
			sub, k.Round(time.Millisecond), kt, q.Round(time.Millisecond), qt, float64(q)/float64(k),
			median(kc).Round(time.Millisecond), median(qc).Round(time.Millisecond),
			fileSize(t, ours), fileSize(t, ref), float64(fileSize(t, ours))/float64(fileSize(t, ref)))
		out, err := exec.Command("qemu-img", "compare", "-f", "raw", "-F", "vmdk", raw, ours).CombinedOutput()
		require.NoError(t, err, "%s", out)
	}
}

// vmdkCPU is the CPU time this process has used.
func vmdkCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
