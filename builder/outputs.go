package builder

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/kiln-build/kiln/formats"
	kimage "github.com/kiln-build/kiln/formats/image"
	"github.com/kiln-build/kiln/internal/sparse"
	"github.com/kiln-build/kiln/internal/testhook"
	"github.com/kiln-build/kiln/manifest"
	"github.com/kiln-build/kiln/recipes"
)

// outputRequest is what the outputs stage needs.
type outputRequest struct {
	Raw      string // the tested raw image
	RawSum   string // its sha256 (the disk stage's)
	Dir      string // where outputs go (the staging artifact directory)
	Name     string
	Firmware string
	Output   recipes.Output
	Log      io.Writer
	// Workers bounds the outputs written at once and each one's compression
	// goroutines; 0 means every core.
	Workers int
}

// writeOutputs writes every requested format from the raw image, checks
// each against the rules of the platform it is for, and reads each back to
// prove it holds the same disk. The formats are written concurrently, at
// most Workers at a time, and the raw image's compression, started first,
// overlaps them. The first failure (or ctx's end) cancels the others and
// removes every file they wrote; the error names the output. It returns
// the manifest entries in the recipe's order. The raw image is left in
// place: dropRaw removes it once nothing else reads it.
func writeOutputs(ctx context.Context, r outputRequest) ([]manifest.Output, error) {
	fi, err := os.Stat(r.Raw)
	if err != nil {
		return nil, err
	}
	if r.Workers <= 0 {
		r.Workers = runtime.NumCPU()
	}
	r.Log = &lockedWriter{w: r.Log}
	jobs := []outputJob{rawJob(r, r.RawSum, slices.Contains(r.Output.Formats, "raw"))}
	for _, f := range r.Output.Formats {
		if f == "raw" {
			continue
		}
		j, err := formatJob(r, f, r.RawSum, fi.Size())
		if err != nil {
			return nil, err
		}
		jobs = append(jobs, j)
	}
	done, err := runOutputJobs(ctx, jobs, r.Workers)
	if err != nil {
		for _, j := range jobs {
			for _, f := range j.files {
				_ = os.Remove(f)
			}
		}
		return nil, err
	}
	raw, outs := done[0], done[1:]
	var ordered []manifest.Output
	for _, f := range r.Output.Formats {
		if f == "raw" {
			ordered = append(ordered, raw)
			continue
		}
		for _, o := range outs {
			if o.Format == f || (f == "ova" && strings.HasSuffix(o.File, ".ova")) {
				ordered = append(ordered, o)
			}
		}
	}
	return ordered, nil
}

// dropRaw removes the raw image unless the artifact publishes it as it is:
// when the recipe did not ask for raw, or asked for it compressed.
func dropRaw(raw string, outs []manifest.Output) error {
	for _, o := range outs {
		if o.Format == "raw" && o.Compression == "" {
			return nil
		}
	}
	return os.Remove(raw)
}

// pendingOutputs are outputs written in the background while the test
// stage boots the image (they read only the raw image, which the test
// never changes). Their log lines are held until the outputs stage takes
// them, so build.log stays in stage order.
type pendingOutputs struct {
	cancel context.CancelFunc
	done   chan struct{}
	log    bytes.Buffer // written by writeOutputs (which serialises its jobs' writes)
	outs   []manifest.Output
	err    error
	took   time.Duration
}

// startOutputs starts writeOutputs(r) on its own goroutine.
func startOutputs(ctx context.Context, r outputRequest) *pendingOutputs {
	ctx, cancel := context.WithCancel(ctx)
	p := &pendingOutputs{cancel: cancel, done: make(chan struct{})}
	r.Log = &p.log
	go func() {
		defer close(p.done)
		start := time.Now()
		p.outs, p.err = writeOutputs(ctx, r)
		p.took = time.Since(start)
	}()
	return p
}

// wait waits for the outputs, copies their log lines to log, and returns
// what writeOutputs returned.
func (p *pendingOutputs) wait(log io.Writer) ([]manifest.Output, error) {
	<-p.done // writeOutputs has returned: nothing writes p.log any more
	_, _ = p.log.WriteTo(log)
	if p.err == nil {
		fmt.Fprintf(log, "(written while the test stage ran, in %s)\n", p.took.Round(100*time.Millisecond))
	}
	return p.outs, p.err
}

// errOutputFailed is the cause a context given by watch is cancelled with.
var errOutputFailed = errors.New("an output failed")

// watch returns a context derived from ctx that is cancelled, with
// errOutputFailed as its cause, as soon as the outputs fail, so that the
// test stage does not boot on for a build that can no longer be published.
// Call the returned function when done with the context.
func (p *pendingOutputs) watch(ctx context.Context) (context.Context, func()) {
	ctx, cancel := context.WithCancelCause(ctx)
	go func() {
		select {
		case <-p.done:
			if p.err != nil {
				cancel(errOutputFailed)
			}
		case <-ctx.Done():
		}
	}()
	return ctx, func() { cancel(nil) }
}

// stop cancels the outputs and waits until they are gone: a cancelled
// writeOutputs removes what it wrote and closes the raw image.
func (p *pendingOutputs) stop() {
	p.cancel()
	<-p.done
}

// outputJob makes one output: files are what it may create, removed if any
// job fails.
type outputJob struct {
	files []string
	run   func(context.Context) (manifest.Output, error)
}

// runOutputJobs runs the jobs, at most workers at a time, started in order.
// The first error cancels the others; it is the one returned.
func runOutputJobs(ctx context.Context, jobs []outputJob, workers int) ([]manifest.Output, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	out := make([]manifest.Output, len(jobs))
	sem := make(chan struct{}, max(workers, 1))
	var wg sync.WaitGroup
	var once sync.Once
	var first error
	for i, j := range jobs {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			o, err := j.run(ctx)
			if err != nil {
				once.Do(func() { first = err; cancel() })
			}
			out[i] = o
		}()
	}
	wg.Wait()
	if first == nil {
		first = ctx.Err()
	}
	return out, first
}

// rawJob checks the raw image against its platforms and compresses it
// when the recipe publishes it compressed.
func rawJob(r outputRequest, rawSum string, keepRaw bool) outputJob {
	compress := keepRaw && r.Output.Compress != formats.CompressNone && r.Output.Compress != ""
	dst := r.Raw + formats.CompressExt(r.Output.Compress)
	j := outputJob{}
	if compress {
		j.files = []string{dst}
	}
	j.run = func(ctx context.Context) (manifest.Output, error) {
		fi, err := os.Stat(r.Raw)
		if err != nil {
			return manifest.Output{}, err
		}
		raw := manifest.Output{File: filepath.Base(r.Raw), Format: "raw", VirtualSize: uint64(fi.Size()), SHA256: rawSum, Checks: []string{}}
		for _, t := range []string{"qemu", "aws"} {
			if err := verifyFor(r.Raw, t, &raw); err != nil {
				return raw, err
			}
		}
		if !compress {
			if keepRaw {
				raw.Size = fi.Size()
			}
			return raw, nil
		}
		sum, size, err := compressFile(ctx, r.Raw, dst, r.Output.Compress, r.Workers)
		if err != nil {
			return raw, fmt.Errorf("compressing the raw image with %s: %w", r.Output.Compress, err)
		}
		fmt.Fprintf(r.Log, "wrote %s (raw, %s, %d bytes)\n", filepath.Base(dst), r.Output.Compress, size)
		raw.File, raw.Compression, raw.UncompressedSHA256 = filepath.Base(dst), r.Output.Compress, rawSum
		raw.SHA256, raw.Size = sum, size
		testhook.At(testhook.OutputWritten + "raw")
		return raw, nil
	}
	return j
}

func compressFile(ctx context.Context, src, dst, algo string, workers int) (sum string, size int64, err error) {
	out, err := os.Create(dst)
	if err != nil {
		return "", 0, err
	}
	defer out.Close()
	in, err := os.Open(src)
	if err != nil {
		return "", 0, err
	}
	defer in.Close()
	h := sha256.New()
	if err := formats.Compress(ctx, io.MultiWriter(out, h), in, algo, workers); err != nil {
		return "", 0, err
	}
	if err := out.Close(); err != nil {
		return "", 0, err
	}
	fi, err := os.Stat(dst)
	if err != nil {
		return "", 0, err
	}
	return hex.EncodeToString(h.Sum(nil)), fi.Size(), nil
}

// formatJob writes one disk format from its own handle on the raw image,
// then checks it and reads it back.
func formatJob(r outputRequest, format, rawSum string, rawSize int64) (outputJob, error) {
	ft, err := formats.Lookup(format)
	if err != nil {
		return outputJob{}, fmt.Errorf("writing the %s output: %w", format, err)
	}
	return outputJob{files: []string{filepath.Join(r.Dir, r.Name+ft.Ext)}, run: func(ctx context.Context) (manifest.Output, error) {
		src, err := kimage.OpenRaw(r.Raw)
		if err != nil {
			return manifest.Output{}, err
		}
		defer src.Close()
		o, err := writeOne(ctx, r, src, format)
		if err != nil {
			return o, fmt.Errorf("writing the %s output: %w", format, err)
		}
		fmt.Fprintf(r.Log, "wrote %s (%s %s, %d bytes)\n", o.File, o.Format, o.Subformat, o.Size)
		if err := checkOutput(ctx, filepath.Join(r.Dir, o.File), &o, rawSum, rawSize); err != nil {
			return o, fmt.Errorf("checking the %s output: %w", format, err)
		}
		testhook.At(testhook.OutputWritten + format)
		return o, nil
	}}, nil
}

// lockedWriter serialises the writes of concurrent output jobs to the log.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func writeOne(ctx context.Context, r outputRequest, src kimage.Source, format string) (manifest.Output, error) {
	o := manifest.Output{Format: format, Checks: []string{}}
	ft, err := formats.Lookup(format)
	if err != nil {
		return o, err
	}
	firmware := "bios"
	if r.Firmware == "uefi" || r.Firmware == "hybrid" {
		firmware = "efi"
	}
	opts := formats.Options{Name: r.Name, CPUs: r.Output.CPUs, MemoryMiB: r.Output.MemoryMiB, Firmware: firmware}
	opts.Workers = r.Workers
	switch format {
	case "qcow2":
		opts.Compress = r.Output.QCOW2Compressed
	case "vmdk":
		opts.Subformat = r.Output.VMDKSubformat
	case "vhd":
		opts.Subformat = r.Output.VHDSubformat
	}
	o.File, o.Subformat = r.Name+ft.Ext, ft.Subformat(opts)
	o.VirtualSize = uint64(ft.VirtualSize(src.Size(), opts))
	path := filepath.Join(r.Dir, o.File)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return o, err
	}
	if err := ft.Write(ctx, f, src, opts); err != nil {
		f.Close()
		return o, err
	}
	if err := f.Close(); err != nil {
		return o, err
	}
	fi, err := os.Stat(path)
	if err != nil {
		return o, err
	}
	o.Size = fi.Size()
	o.SHA256, err = sparse.SHA256(path)
	return o, err
}

// targetsFor are the platform checks each output is held to.
func targetsFor(o manifest.Output) []string {
	switch o.Format {
	case "vhd":
		if o.Subformat == "fixed" {
			return []string{"azure", "aws", "qemu"}
		}
		return []string{"aws", "qemu"}
	case "vhdx":
		return []string{"aws", "qemu"}
	case "vmdk":
		if o.Subformat == "streamOptimized" {
			return []string{"vsphere", "aws", "qemu"}
		}
		return []string{"qemu"}
	case "ova":
		return []string{"vsphere", "aws"}
	}
	return []string{"qemu"}
}

func verifyFor(path, target string, o *manifest.Output) error {
	rep, err := formats.Verify(path, target)
	if err != nil {
		return fmt.Errorf("verifying %s for %s: %w", filepath.Base(path), target, err)
	}
	if !rep.OK() {
		return fmt.Errorf("%s does not meet %s's rules:\n  %s", filepath.Base(path), target, strings.Join(rep.Problems, "\n  "))
	}
	o.Checks = append(o.Checks, target)
	return nil
}

// checkOutput runs the platform checks and reads the file back: its virtual
// disk must hash like the raw image (a fixed VHD's extra tail is zeros).
func checkOutput(ctx context.Context, path string, o *manifest.Output, rawSum string, rawSize int64) error {
	for _, t := range targetsFor(*o) {
		if err := verifyFor(path, t, o); err != nil {
			return err
		}
	}
	if o.Format == "ova" {
		return nil // its disk is a streamOptimized VMDK written by the same code as the vmdk output
	}
	img, err := formats.Open(path)
	if err != nil {
		return fmt.Errorf("reading back %s: %w", o.File, err)
	}
	defer img.Close()
	sum, tailZero, err := kimage.VirtualSHA256(ctx, img, rawSize)
	if err != nil {
		return fmt.Errorf("reading back %s: %w", o.File, err)
	}
	if sum != rawSum || !tailZero {
		return fmt.Errorf("%s does not hold the same disk as the raw image (sha256 %s, raw %s)", o.File, sum, rawSum)
	}
	return nil
}
