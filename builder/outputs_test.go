package builder

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kiln-build/kiln/internal/sparse"
	"github.com/kiln-build/kiln/internal/testhook"
	"github.com/kiln-build/kiln/internal/testutil"
	"github.com/kiln-build/kiln/manifest"
	"github.com/kiln-build/kiln/recipes"
)

// Jobs run at most workers at a time, and that many at once when there is
// work: with two workers, the first two jobs meet inside.
func TestOutputJobsRunConcurrentlyWithinTheBound(t *testing.T) {
	var running, most atomic.Int32
	meet := make(chan struct{})
	var once sync.Once
	job := func(ctx context.Context) (manifest.Output, error) {
		n := running.Add(1)
		defer running.Add(-1)
		for {
			m := most.Load()
			if n <= m || most.CompareAndSwap(m, n) {
				break
			}
		}
		if n == 2 {
			once.Do(func() { close(meet) })
		}
		select {
		case <-meet:
		case <-time.After(10 * time.Second):
			return manifest.Output{}, errors.New("ran alone: jobs are not concurrent")
		}
		return manifest.Output{Format: "x"}, nil
	}
	jobs := make([]outputJob, 6)
	for i := range jobs {
		jobs[i] = outputJob{run: job}
	}
	out, err := runOutputJobs(context.Background(), jobs, 2)
	require.NoError(t, err)
	require.Len(t, out, 6)
	require.EqualValues(t, 2, most.Load())
}

// The first failure is the error returned, and it cancels the jobs running
// and the ones not started.
func TestOutputJobsFirstFailureCancelsTheOthers(t *testing.T) {
	var started atomic.Int32
	boom := errors.New("writing the vmdk output: disk full")
	jobs := []outputJob{
		{run: func(ctx context.Context) (manifest.Output, error) {
			started.Add(1)
			<-ctx.Done()
			return manifest.Output{}, ctx.Err()
		}},
		{run: func(context.Context) (manifest.Output, error) {
			started.Add(1)
			time.Sleep(50 * time.Millisecond)
			return manifest.Output{}, boom
		}},
	}
	for range 3 {
		jobs = append(jobs, outputJob{run: func(context.Context) (manifest.Output, error) {
			started.Add(1)
			return manifest.Output{}, nil
		}})
	}
	_, err := runOutputJobs(context.Background(), jobs, 2)
	require.ErrorIs(t, err, boom)
	require.EqualValues(t, 2, started.Load(), "no job starts after a failure")
}

// gptDisk makes a small raw disk with a GPT and some data, as sgdisk writes it.
func gptDisk(t *testing.T, dir string) string {
	testutil.Require(t, "sgdisk")
	raw := filepath.Join(dir, "img.raw")
	f, err := os.Create(raw)
	require.NoError(t, err)
	require.NoError(t, f.Truncate(64<<20))
	data := make([]byte, 4<<20)
	_, _ = rand.Read(data)
	_, err = f.WriteAt(data, 8<<20)
	require.NoError(t, err)
	require.NoError(t, f.Close())
	out, err := exec.Command("sgdisk", "-o", "-n", "1:2048:0", "-t", "1:8300", raw).CombinedOutput()
	require.NoError(t, err, string(out))
	return raw
}

// rawSHA256 is the disk stage's sha256 of raw, which the outputs are given.
func rawSHA256(t *testing.T, raw string) string {
	t.Helper()
	sum, err := sparse.SHA256(raw)
	require.NoError(t, err)
	return sum
}

// Every format is written, checked and read back, in the recipe's order in
// the manifest, the raw image compressed beside them.
func TestWriteOutputsInRecipeOrder(t *testing.T) {
	dir := t.TempDir()
	raw := gptDisk(t, dir)
	rawSum := rawSHA256(t, raw)
	formats := []string{"vhd", "raw", "qcow2", "vmdk"}
	var log bytes.Buffer
	outs, err := writeOutputs(context.Background(), outputRequest{Raw: raw, RawSum: rawSum, Dir: dir, Name: "img", Firmware: "bios", Log: &log,
		Output: recipes.Output{Formats: formats, Compress: "zstd", VHDSubformat: "fixed", VMDKSubformat: "streamOptimized"}})
	require.NoError(t, err)
	var got []string
	for _, o := range outs {
		got = append(got, o.Format)
		sum, err := sparse.SHA256(filepath.Join(dir, o.File))
		require.NoError(t, err)
		require.Equal(t, o.SHA256, sum, o.File)
		require.NotEmpty(t, o.Checks, o.File)
	}
	require.Equal(t, formats, got)
	require.Equal(t, "img.raw.zst", outs[1].File)
	require.Equal(t, rawSum, outs[1].UncompressedSHA256)
	require.FileExists(t, raw, "the raw image stays until the tests are done with it")
	require.NoError(t, dropRaw(raw, outs))
	require.NoFileExists(t, raw, "only the compressed raw image is kept")
	for _, f := range []string{"img.vhd", "img.qcow2", "img.vmdk", "img.raw.zst"} {
		require.Contains(t, log.String(), "wrote "+f)
	}
}

// The raw image stays when the recipe publishes it uncompressed, and goes
// when it does not publish it at all.
func TestDropRaw(t *testing.T) {
	dir := t.TempDir()
	raw := filepath.Join(dir, "img.raw")
	require.NoError(t, os.WriteFile(raw, []byte("disk"), 0o644))
	require.NoError(t, dropRaw(raw, []manifest.Output{{Format: "qcow2"}, {Format: "raw", File: "img.raw"}}))
	require.FileExists(t, raw)
	require.NoError(t, dropRaw(raw, []manifest.Output{{Format: "qcow2"}}))
	require.NoFileExists(t, raw)
}

// Outputs started in the background (while the test stage boots) give what
// writeOutputs gives, their log lines held until they are waited for;
// stopped, they leave nothing but the raw image.
func TestPendingOutputs(t *testing.T) {
	dir := t.TempDir()
	raw := gptDisk(t, dir)
	req := outputRequest{Raw: raw, RawSum: rawSHA256(t, raw), Dir: dir, Name: "img", Firmware: "bios", Workers: 1,
		Output: recipes.Output{Formats: []string{"raw", "qcow2"}, Compress: "zstd"}}
	var early bytes.Buffer
	req.Log = &early
	p := startOutputs(context.Background(), req)
	var log bytes.Buffer
	outs, err := p.wait(&log)
	require.NoError(t, err)
	require.Empty(t, early.String(), "nothing is logged before the outputs stage takes it")
	require.Contains(t, log.String(), "wrote img.raw.zst")
	require.Contains(t, log.String(), "wrote img.qcow2")
	require.Len(t, outs, 2)
	for _, o := range outs {
		require.FileExists(t, filepath.Join(dir, o.File))
	}

	// Stopped after one output is written and checked, while the raw image
	// may still be compressing: every output goes, the raw image stays.
	dir2 := t.TempDir()
	raw2 := gptDisk(t, dir2)
	req.Raw, req.RawSum, req.Dir = raw2, rawSHA256(t, raw2), dir2
	written, release := make(chan struct{}), make(chan struct{})
	testhook.Reached = func(point string) {
		if point == testhook.OutputWritten+"qcow2" {
			close(written)
			<-release
		}
	}
	t.Cleanup(func() { testhook.Reached = nil })
	p = startOutputs(context.Background(), req)
	<-written
	require.FileExists(t, filepath.Join(dir2, "img.qcow2"))
	p.cancel()
	close(release)
	p.stop()
	left, _ := filepath.Glob(filepath.Join(dir2, "img.*"))
	require.Equal(t, []string{raw2}, left, "a stopped write leaves only the raw image")
	_, err = p.wait(io.Discard)
	require.ErrorIs(t, err, context.Canceled)
}

// A failing output fails the stage with the format's name, and no output,
// finished or not, is left behind; the raw image is.
func TestWriteOutputsFailureLeavesNothing(t *testing.T) {
	dir := t.TempDir()
	raw := gptDisk(t, dir)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "img.vmdk"), []byte("in the way"), 0o644))
	_, err := writeOutputs(context.Background(), outputRequest{Raw: raw, RawSum: rawSHA256(t, raw), Dir: dir, Name: "img", Firmware: "uefi", Log: &bytes.Buffer{},
		Output: recipes.Output{Formats: []string{"raw", "qcow2", "vmdk", "vhdx"}, Compress: "zstd", VMDKSubformat: "streamOptimized"}})
	require.ErrorContains(t, err, "writing the vmdk output")
	left, _ := filepath.Glob(filepath.Join(dir, "img.*"))
	require.Equal(t, []string{raw}, left, "only the raw image is left")
}

// A context from watch ends, with errOutputFailed as its cause, when the
// outputs fail (here a file is in the way of the vmdk), and stays alive
// when they succeed.
func TestPendingOutputsWatch(t *testing.T) {
	dir := t.TempDir()
	raw := gptDisk(t, dir)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "img.vmdk"), []byte("in the way"), 0o644))
	req := outputRequest{Raw: raw, RawSum: rawSHA256(t, raw), Dir: dir, Name: "img", Firmware: "uefi", Workers: 1,
		Output: recipes.Output{Formats: []string{"qcow2", "vmdk"}, VMDKSubformat: "streamOptimized"}}
	p := startOutputs(context.Background(), req)
	ctx, done := p.watch(context.Background())
	defer done()
	select {
	case <-ctx.Done():
	case <-time.After(time.Minute):
		t.Fatal("the watching context did not end when the vmdk output failed")
	}
	require.ErrorIs(t, context.Cause(ctx), errOutputFailed)
	_, err := p.wait(io.Discard)
	require.ErrorContains(t, err, "writing the vmdk output")

	dir2 := t.TempDir()
	raw2 := gptDisk(t, dir2)
	req.Raw, req.RawSum, req.Dir = raw2, rawSHA256(t, raw2), dir2
	p = startOutputs(context.Background(), req)
	ctx, done = p.watch(context.Background())
	_, err = p.wait(io.Discard)
	require.NoError(t, err)
	time.Sleep(50 * time.Millisecond) // the watcher has seen the outputs finish
	require.NoError(t, ctx.Err(), "outputs that succeed leave the watching context alive")
	done()
	require.ErrorIs(t, ctx.Err(), context.Canceled)
	require.NotErrorIs(t, context.Cause(ctx), errOutputFailed)
}
