package builder

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

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
	Dir      string // where outputs go (the staging artifact directory)
	Name     string
	Firmware string
	Output   recipes.Output
	Log      io.Writer
}

// writeOutputs writes every requested format from the raw image, checks
// each against the rules of the platform it is for, reads each back to
// prove it holds the same disk, and finally compresses (or drops) the raw
// image. It returns the manifest entries in the recipe's order.
func writeOutputs(ctx context.Context, r outputRequest) ([]manifest.Output, error) {
	src, err := kimage.OpenRaw(r.Raw)
	if err != nil {
		return nil, err
	}
	defer src.Close()
	rawSum, err := sparse.SHA256(r.Raw)
	if err != nil {
		return nil, err
	}
	var outs []manifest.Output
	for _, f := range r.Output.Formats {
		if f == "raw" {
			continue // last: the other formats are made from it
		}
		o, err := writeOne(ctx, r, src, f)
		if err != nil {
			return nil, fmt.Errorf("writing the %s output: %w", f, err)
		}
		fmt.Fprintf(r.Log, "wrote %s (%s %s, %d bytes)\n", o.File, o.Format, o.Subformat, o.Size)
		if err := checkOutput(ctx, filepath.Join(r.Dir, o.File), &o, rawSum, src.Size()); err != nil {
			return nil, err
		}
		outs = append(outs, o)
		testhook.At(testhook.OutputWritten + f)
	}
	raw := manifest.Output{File: filepath.Base(r.Raw), Format: "raw", VirtualSize: uint64(src.Size()), SHA256: rawSum, Checks: []string{}}
	for _, t := range []string{"qemu", "aws"} {
		if err := verifyFor(r.Raw, t, &raw); err != nil {
			return nil, err
		}
	}
	keepRaw := false
	for _, f := range r.Output.Formats {
		keepRaw = keepRaw || f == "raw"
	}
	if keepRaw && r.Output.Compress != formats.CompressNone && r.Output.Compress != "" {
		dst := r.Raw + formats.CompressExt(r.Output.Compress)
		out, err := os.Create(dst)
		if err != nil {
			return nil, err
		}
		h := sha256.New()
		in, err := os.Open(r.Raw)
		if err != nil {
			out.Close()
			return nil, err
		}
		err = formats.Compress(ctx, io.MultiWriter(out, h), in, r.Output.Compress, 0)
		in.Close()
		if cerr := out.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return nil, fmt.Errorf("compressing the raw image with %s: %w", r.Output.Compress, err)
		}
		fi, err := os.Stat(dst)
		if err != nil {
			return nil, err
		}
		raw.File, raw.Compression, raw.UncompressedSHA256 = filepath.Base(dst), r.Output.Compress, rawSum
		raw.SHA256, raw.Size = hex.EncodeToString(h.Sum(nil)), fi.Size()
	} else if keepRaw {
		fi, err := os.Stat(r.Raw)
		if err != nil {
			return nil, err
		}
		raw.Size = fi.Size()
	}
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
	if !keepRaw || raw.Compression != "" {
		if err := os.Remove(r.Raw); err != nil {
			return nil, err
		}
	}
	return ordered, nil
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
