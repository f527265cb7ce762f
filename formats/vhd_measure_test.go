package formats

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/kiln-build/kiln/internal/testutil"
)

// TestVHDMeasure times the VHD and VHDX writers against qemu-img convert
// on real raw disks, alternating runs, and reports sizes. It asserts
// nothing about time. Run it with
//
//	KILN_VHD_MEASURE=/path/a.raw,/path/b.raw [KILN_VHD_MEASURE_DIR=dir] \
//	    go test ./formats/ -run VHDMeasure -v -timeout 1h
//
// Each is timed twice: as is (qemu-img convert's default cache mode for the
// target, "unsafe", never flushes) and made durable (Kiln: fdatasync;
// qemu-img: -t writeback).
func TestVHDMeasure(t *testing.T) {
	srcs := os.Getenv("KILN_VHD_MEASURE")
	if srcs == "" {
		t.Skip("set KILN_VHD_MEASURE to raw images to measure")
	}
	testutil.Require(t, "qemu-img")
	dir := os.Getenv("KILN_VHD_MEASURE_DIR")
	if dir == "" {
		dir = t.TempDir()
	}
	const reps = 3
	targets := []struct {
		name  string
		o     Options
		write func(context.Context, *os.File, Source, Options) error
		qfmt  string
		qopts string
	}{
		{"vhd fixed", Options{}, WriteVHD, "vpc", "subformat=fixed,force_size=on"},
		{"vhd dynamic", Options{Subformat: "dynamic"}, WriteVHD, "vpc", "subformat=dynamic"},
		{"vhdx", Options{}, WriteVHDX, "vhdx", ""},
	}
	for _, rawPath := range strings.Split(srcs, ",") {
		src := vhdOpenRaw(t, rawPath)
		t.Logf("source %s: %d bytes, %d allocated", rawPath, src.Size(), vhdAllocated(t, rawPath))
		for _, tg := range targets {
			ours, theirs := filepath.Join(dir, "kiln.out"), filepath.Join(dir, "qemu.out")
			// [0] without flushing, [1] with: Kiln fdatasyncs, qemu-img
			// runs with -t writeback (its default for convert, "unsafe",
			// never flushes).
			var kt, qt [2][]time.Duration
			for range reps {
				for durable := range 2 {
					os.Remove(ours)
					start := time.Now()
					f, err := os.Create(ours)
					require.NoError(t, err)
					require.NoError(t, tg.write(context.Background(), f, src, tg.o))
					if durable == 1 {
						require.NoError(t, unix.Fdatasync(int(f.Fd())))
					}
					require.NoError(t, f.Close())
					kt[durable] = append(kt[durable], time.Since(start).Round(time.Millisecond))

					os.Remove(theirs)
					args := []string{"convert", "-f", "raw", "-O", tg.qfmt}
					if tg.qopts != "" {
						args = append(args, "-o", tg.qopts)
					}
					if durable == 1 {
						args = append(args, "-t", "writeback")
					}
					start = time.Now()
					out, err := exec.Command("qemu-img", append(args, rawPath, theirs)...).CombinedOutput()
					require.NoError(t, err, "%s", out)
					qt[durable] = append(qt[durable], time.Since(start).Round(time.Millisecond))
				}
			}
			require.Contains(t, vhdQemuOK(t, "compare", "-f", "raw", "-F", tg.qfmt, rawPath, ours), "identical")
			t.Logf("%-12s kiln %v, flushed %v; size %d, allocated %d", tg.name, kt[0], kt[1], vhdFileSize(t, ours), vhdAllocated(t, ours))
			t.Logf("%-12s qemu %v, flushed %v; size %d, allocated %d", "", qt[0], qt[1], vhdFileSize(t, theirs), vhdAllocated(t, theirs))
		}
	}
}
