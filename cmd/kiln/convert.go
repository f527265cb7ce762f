package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/kiln-build/kiln/formats"
	"github.com/kiln-build/kiln/formats/image"
	"github.com/kiln-build/kiln/internal/livedir"
	"github.com/kiln-build/kiln/secureboot"
)

const convertUsage = `kiln convert [flags] IN --to FORMAT [-o OUT]

Converts a disk image to another format, natively (no qemu-img). IN may be
raw, qcow2, VMDK, VHD or VHDX, or a .zst/.xz compressed raw image. FORMAT is
raw, qcow2, vmdk, vhd, vhdx or ova. OUT defaults to IN with the new extension;
an existing OUT is never overwritten unless --force is given, and a failed or
interrupted conversion leaves no partial OUT.`

const verifyUsage = `kiln verify --target TARGET [--secure-boot] [--json] FILE

Checks a disk image against the rules a platform applies when importing it,
and says exactly what is wrong. TARGET is azure, gcp, vsphere, hyperv, aws or
qemu.

For azure and gcp it also reports whether the image is Secure-Boot-ready:
whether the platform's default Secure Boot keys (Microsoft's UEFI CA) would
start EFI/BOOT/BOOTX64.EFI on its EFI system partition, and the second stage
a shim starts is signed. --secure-boot makes that one of the rules.

Exit code 0 when the file meets every rule, 1 when it does not, 2 on usage errors.

` + verifyKeyUsage

func cmdConvert(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("convert", convertUsage, stderr)
	to := fs.String("to", "", "output format: raw, qcow2, vmdk, vhd, vhdx or ova")
	out := fs.String("o", "", "output file (default: IN with the format's extension)")
	sub := fs.String("subformat", "", "vmdk: streamOptimized (default) or monolithicSparse; vhd: fixed (default) or dynamic")
	compressed := fs.Bool("compressed", false, "qcow2: compressed clusters")
	compress := fs.String("compress", "none", "compress the output file: zstd, xz or none")
	firmware := fs.String("firmware", "efi", "ova: the virtual machine's firmware, efi or bios")
	force := fs.Bool("force", false, "overwrite OUT if it exists")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return flagError(err)
	}
	ft, err := formats.Lookup(*to)
	if len(pos) != 1 || err != nil {
		fmt.Fprintln(stderr, "kiln convert: expected one IN argument and --to raw|qcow2|vmdk|vhd|vhdx|ova")
		fs.Usage()
		return exitUsage
	}
	in := pos[0]
	if *out == "" {
		*out = strings.TrimSuffix(in, filepath.Ext(in)) + ft.Ext + formats.CompressExt(*compress)
	}
	if !*force {
		if _, err := os.Stat(*out); err == nil {
			return fail(stdout, stderr, *asJSON, fmt.Errorf("%s exists; pass --force to overwrite it", *out), exitUsage)
		}
	}
	opts := formats.Options{Options: image.Options{Subformat: *sub, Compress: *compressed}, Firmware: *firmware}
	if err := convert(ctx, in, *out, ft, opts, *compress); err != nil {
		return fail(stdout, stderr, *asJSON, err, exitFailed)
	}
	fi, err := os.Stat(*out)
	if err != nil {
		return fail(stdout, stderr, *asJSON, err, exitFailed)
	}
	if *asJSON {
		return writeJSON(stdout, map[string]any{"status": "converted", "file": *out, "format": *to, "size": fi.Size()})
	}
	fmt.Fprintf(stdout, "%s: %s (%d bytes)\n", *out, *to, fi.Size())
	return exitOK
}

// convertTempPrefix names kiln convert's live temporary directories
// (internal/livedir) beside the output.
const convertTempPrefix = ".kiln-convert-"

// convert writes in as format to out, through a temporary file renamed
// into place. The temporary directory beside out is a live directory: a
// conversion killed with SIGKILL leaves it, and the next conversion into
// the same directory sweeps it (and only such dead ones).
func convert(ctx context.Context, in, out string, ft *formats.Format, opts formats.Options, compress string) (err error) {
	_, _ = livedir.SweepDead(filepath.Dir(out), convertTempPrefix)
	live, err := livedir.Create(filepath.Dir(out), convertTempPrefix, 0o700)
	if err != nil {
		return err
	}
	defer live.Remove()
	tmpDir := live.Path
	switch kind, err := formats.Detect(in); {
	case err != nil:
		return err
	case kind == "zstd" || kind == "xz":
		raw := filepath.Join(tmpDir, "input.raw")
		if err := formats.Decompress(ctx, in, raw); err != nil {
			return err
		}
		in = raw
	}
	src, err := formats.Open(in)
	if err != nil {
		return err
	}
	defer src.Close()
	if ft.Name == "raw" && compress != "none" && compress != "" {
		// Compress the virtual disk straight into OUT: no intermediate file.
		tmp := filepath.Join(tmpDir, "output")
		if err := compressInto(ctx, tmp, io.NewSectionReader(src, 0, src.Size()), compress); err != nil {
			return err
		}
		return os.Rename(tmp, out)
	}
	tmp := filepath.Join(tmpDir, "output")
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	opts.Name = strings.TrimSuffix(filepath.Base(out), filepath.Ext(out)) // an OVA's virtual machine
	err = ft.Write(ctx, f, src, opts)
	if err != nil {
		return err
	}
	if compress != "none" && compress != "" {
		cpath := tmp + formats.CompressExt(compress)
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return err
		}
		if err := compressInto(ctx, cpath, f, compress); err != nil {
			return err
		}
		tmp = cpath
	} else if err := f.Sync(); err != nil {
		return err
	}
	return os.Rename(tmp, out)
}

// compressInto writes r, compressed with compress, to a new file at path,
// synced to disk.
func compressInto(ctx context.Context, path string, r io.Reader, compress string) error {
	c, err := os.Create(path)
	if err != nil {
		return err
	}
	err = formats.Compress(ctx, c, r, compress, 0)
	if err == nil {
		err = c.Sync()
	}
	if cerr := c.Close(); err == nil {
		err = cerr
	}
	return err
}

func cmdVerify(_ context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("verify", verifyUsage, stderr)
	target := fs.String("target", "", "azure, gcp, vsphere, hyperv, aws or qemu")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	key, images := registerVerifyKey(fs)
	requireSB := fs.Bool("secure-boot", false, "azure, gcp: fail unless the image is Secure-Boot-ready")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return flagError(err)
	}
	if *key != "" {
		if len(pos) != 1 || *target != "" || *requireSB {
			fmt.Fprintln(stderr, "kiln verify: expected --key PUB and one ARTIFACT or REF (--key and --target or --secure-boot do not go together)")
			fs.Usage()
			return exitUsage
		}
		return verifyArtifact(*key, *images, pos[0], *asJSON, stdout, stderr)
	}
	if len(pos) != 1 || *target == "" {
		fmt.Fprintln(stderr, "kiln verify: expected --target TARGET and one FILE")
		fs.Usage()
		return exitUsage
	}
	rep, err := formats.Verify(pos[0], *target)
	if err != nil {
		code := exitFailed
		if strings.Contains(err.Error(), "unknown target") || errors.Is(err, os.ErrNotExist) {
			code = exitUsage
		}
		return fail(stdout, stderr, *asJSON, err, code)
	}
	sb, err := secureBootReadiness(pos[0], *target)
	if err != nil {
		return fail(stdout, stderr, *asJSON, err, exitFailed)
	}
	if *requireSB && sb == nil {
		return fail(stdout, stderr, *asJSON, fmt.Errorf("--secure-boot: kiln knows the Secure Boot defaults of %s only", strings.Join(secureBootTargets(), " and ")), exitUsage)
	}
	ok := rep.OK() && (!*requireSB || sb.Ready)
	if *asJSON {
		writeJSON(stdout, struct {
			formats.VerifyReport
			SecureBoot *secureboot.Readiness `json:"secure_boot,omitempty"`
		}{rep, sb})
	} else {
		if rep.OK() {
			fmt.Fprintf(stdout, "%s: meets %s's rules (%s%s)\n", rep.File, rep.Target, rep.Format, subformatSuffix(rep.Subformat))
		} else {
			fmt.Fprintf(stdout, "%s: %d problem(s) for %s (%s%s):\n", rep.File, len(rep.Problems), rep.Target, rep.Format, subformatSuffix(rep.Subformat))
			for _, p := range rep.Problems {
				fmt.Fprintf(stdout, "  - %s\n", p)
			}
		}
		writeReadiness(stdout, sb)
	}
	if !ok {
		return exitFailed
	}
	return exitOK
}

// secureBootReadiness reads the image's ESP and holds it to the target's
// Secure Boot defaults; nil for targets without known defaults.
func secureBootReadiness(path, target string) (*secureboot.Readiness, error) {
	p, known := secureboot.Platforms[target]
	if !known {
		return nil, nil
	}
	img, err := formats.Open(path)
	if err != nil {
		r := secureboot.Readiness{Platform: p.Name, Chain: []secureboot.File{}, Problems: []string{fmt.Sprintf("the disk cannot be read for its EFI system partition: %v", err)}, Notes: []string{}}
		return &r, nil
	}
	defer img.Close()
	chain, err := secureboot.ReadESP(img, img.Size())
	if err != nil {
		r := secureboot.Readiness{Platform: p.Name, Chain: []secureboot.File{}, Problems: []string{err.Error()}, Notes: []string{}}
		return &r, nil
	}
	r := secureboot.Check(chain, p)
	return &r, nil
}

func secureBootTargets() []string {
	var out []string
	for t := range secureboot.Platforms {
		out = append(out, t)
	}
	sort.Strings(out)
	return out
}

func writeReadiness(w io.Writer, sb *secureboot.Readiness) {
	if sb == nil {
		return
	}
	if sb.Ready {
		fmt.Fprintf(w, "Secure Boot: ready for %s\n", sb.Platform)
	} else {
		fmt.Fprintf(w, "Secure Boot: not ready for %s:\n", sb.Platform)
		for _, p := range sb.Problems {
			fmt.Fprintf(w, "  - %s\n", p)
		}
	}
	for _, f := range sb.Chain {
		who := "unsigned"
		if len(f.Signers) > 0 {
			var s []string
			for _, g := range f.Signers {
				s = append(s, g.Subject+" (issuer "+g.Issuer+")")
			}
			who = "signed by " + strings.Join(s, "; ")
		}
		fmt.Fprintf(w, "  %s: %s\n", f.Path, who)
	}
	for _, n := range sb.Notes {
		fmt.Fprintf(w, "  note: %s\n", n)
	}
}

func subformatSuffix(s string) string {
	if s == "" {
		return ""
	}
	return ", " + s
}
