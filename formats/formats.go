// Package formats is the one list of the disk image formats Kiln publishes
// (raw, qcow2, VMDK, VHD, VHDX and OVA; All, Lookup), with what works
// across them: detecting a file's format (Detect), opening any disk image
// as a virtual disk (Open), compressing published files (Compress,
// Decompress) and checking a file against a platform's import rules
// (Verify, for kiln verify).
//
// Each format lives in its own package (formats/qcow2, formats/vmdk,
// formats/vhd, formats/vhdx, formats/ova), with its writer, its reader and
// its checks; what they share (Source, Image, Options, FormatError, raw
// files) is in formats/image. The outputs stage of a build and kiln convert
// both write through this registry, so a format is added in one place.
//
// Writers stream from a raw Source and visit only its data extents
// (SEEK_DATA/SEEK_HOLE), skipping zero blocks, so time and size grow with
// the data, not with the virtual size. Nothing here runs qemu-img; tests use
// it as the judge.
package formats

import (
	"context"
	"fmt"
	"os"

	"github.com/kiln-build/kiln/formats/image"
	"github.com/kiln-build/kiln/formats/ova"
	"github.com/kiln-build/kiln/formats/qcow2"
	"github.com/kiln-build/kiln/formats/vhd"
	"github.com/kiln-build/kiln/formats/vhdx"
	"github.com/kiln-build/kiln/formats/vmdk"
)

// Format is one disk image format Kiln writes.
type Format struct {
	Name     string // in recipes, manifests and kiln convert --to: "qcow2"
	Ext      string // the file name extension: ".qcow2"
	QEMUName string // QEMU's driver name ("vpc" for VHD); "" if QEMU cannot use the file (ova)
	// Subformats are the values Options.Subformat may take, the default
	// (used when Options.Subformat is "") first; nil if the format has none.
	Subformats []string

	// Write writes src to dst (created by the caller, written from offset 0).
	Write func(ctx context.Context, dst *os.File, src image.Source, o Options) error
	// Open opens a file of this format as a virtual disk; nil if the file
	// is not one (an OVA holds one).
	Open func(path string) (image.Image, error)
	// Check lists the structural problems of a file of this format (none:
	// sound); nil if the format has no check of its own.
	Check func(path string) ([]string, error)

	// magic recognises the format from the file's first 512 bytes (head)
	// or, for formats that keep their signature at the end, its last 512
	// bytes (tail, nil for a shorter file). nil for raw, the fallback.
	magic func(head, tail []byte) bool
	// subformat names the subformat of a file written with o, as the
	// manifest records it; nil: o's subformat.
	subformat func(o Options) string
	// virtualSize is the virtual size of a file written from n bytes;
	// nil: n.
	virtualSize func(n int64, o Options) int64
}

// Options are what Format.Write takes: the writer options and, for an OVA,
// the virtual machine around the disk.
type Options struct {
	image.Options
	Name      string // ova: the virtual system name
	CPUs      int    // ova: default 2
	MemoryMiB int    // ova: default 1024
	Firmware  string // ova: "efi" or "bios" (the default)
}

// Subformat is the subformat of a file f writes with o, as the manifest
// records it ("" if none).
func (f *Format) Subformat(o Options) string {
	if f.subformat != nil {
		return f.subformat(o)
	}
	return f.defaultSubformat(o.Subformat)
}

// VirtualSize is the virtual size of a file f writes with o from a source
// of n bytes.
func (f *Format) VirtualSize(n int64, o Options) int64 {
	if f.virtualSize != nil {
		return f.virtualSize(n, o)
	}
	return n
}

func (f *Format) defaultSubformat(sub string) string {
	if sub == "" && len(f.Subformats) > 0 {
		return f.Subformats[0]
	}
	return sub
}

// writer adapts a format package's Write to Format.Write, filling in the
// default subformat.
func (f *Format) writer(write func(context.Context, *os.File, image.Source, image.Options) error) func(context.Context, *os.File, image.Source, Options) error {
	return func(ctx context.Context, dst *os.File, src image.Source, o Options) error {
		io := o.Options
		io.Subformat = f.defaultSubformat(io.Subformat)
		return write(ctx, dst, src, io)
	}
}

func hasPrefix(b []byte, s string) bool { return len(b) >= len(s) && string(b[:len(s)]) == s }

var registry = func() []*Format {
	raw := &Format{Name: "raw", Ext: ".raw", QEMUName: "raw",
		Write: func(ctx context.Context, dst *os.File, src image.Source, _ Options) error {
			return writeRaw(ctx, dst, src)
		},
		Open: func(path string) (image.Image, error) { return image.OpenRaw(path) },
	}
	q := &Format{Name: "qcow2", Ext: ".qcow2", QEMUName: "qcow2", Open: qcow2.Open,
		magic: func(head, _ []byte) bool { return hasPrefix(head, "QFI\xfb") },
		subformat: func(o Options) string {
			if o.Compress {
				return "compressed"
			}
			return ""
		},
	}
	q.Write = q.writer(qcow2.Write)
	vm := &Format{Name: "vmdk", Ext: ".vmdk", QEMUName: "vmdk", Open: vmdk.Open,
		Subformats: []string{vmdk.StreamOptimized, vmdk.MonolithicSparse},
		magic: func(head, _ []byte) bool {
			return hasPrefix(head, "KDMV") || hasPrefix(head, "# Disk DescriptorFile")
		},
	}
	vm.Write = vm.writer(vmdk.Write)
	vx := &Format{Name: "vhdx", Ext: ".vhdx", QEMUName: "vhdx", Open: vhdx.Open, Check: vhdx.Check,
		Subformats: []string{"dynamic", "fixed"},
		magic:      func(head, _ []byte) bool { return hasPrefix(head, "vhdxfile") },
		subformat:  func(Options) string { return "" },
	}
	vx.Write = vx.writer(vhdx.Write)
	vh := &Format{Name: "vhd", Ext: ".vhd", QEMUName: "vpc", Open: vhd.Open,
		Subformats: []string{"fixed", "dynamic"},
		// A dynamic VHD starts with a copy of its footer; a fixed one is
		// the raw data, then the footer.
		magic: func(head, tail []byte) bool { return hasPrefix(head, "conectix") || hasPrefix(tail, "conectix") },
	}
	vh.Write = vh.writer(vhd.Write)
	vh.virtualSize = func(n int64, o Options) int64 { return vhd.VirtualSize(n, vh.defaultSubformat(o.Subformat)) }
	ov := &Format{Name: "ova", Ext: ".ova", Check: ova.Check,
		magic:     func(head, _ []byte) bool { return len(head) >= 263 && string(head[257:262]) == "ustar" },
		subformat: func(Options) string { return vmdk.StreamOptimized },
		Write: func(ctx context.Context, dst *os.File, src image.Source, o Options) error {
			spec := ova.OVFSpec{Name: o.Name, CPUs: o.CPUs, MemoryMiB: o.MemoryMiB, Firmware: o.Firmware,
				DiskFile: o.Name + "-disk1.vmdk", Capacity: src.Size()}
			return ova.Write(ctx, dst, src, spec, false, o.Options)
		},
	}
	return []*Format{raw, q, vm, vh, vx, ov}
}()

// All lists every format, raw first.
func All() []*Format { return registry }

// Lookup finds a format by name.
func Lookup(name string) (*Format, error) {
	for _, f := range registry {
		if f.Name == name {
			return f, nil
		}
	}
	return nil, fmt.Errorf("unknown format %q", name)
}

// writeRaw writes the virtual disk as a sparse raw file.
func writeRaw(ctx context.Context, f *os.File, src image.Source) error {
	if err := f.Truncate(src.Size()); err != nil {
		return err
	}
	return image.ForEachBlock(src, 1<<20, func(off int64, data []byte) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		_, err := f.WriteAt(data, off)
		return err
	})
}
