package formats

import (
	"fmt"
	"sort"
	"strings"

	"github.com/kiln-build/kiln/disk"
	"github.com/kiln-build/kiln/formats/vhd"
	"github.com/kiln-build/kiln/formats/vmdk"
	"github.com/kiln-build/kiln/internal/parttype"
)

// Targets are the platforms kiln verify knows.
var Targets = []string{"azure", "gcp", "vsphere", "hyperv", "aws", "qemu"}

// VerifyReport is what Verify found.
type VerifyReport struct {
	Target    string   `json:"target"`
	File      string   `json:"file"`
	Format    string   `json:"format"`
	Subformat string   `json:"subformat,omitempty"`
	Problems  []string `json:"problems"`
}

// OK reports whether the file meets every rule of the target.
func (r VerifyReport) OK() bool { return len(r.Problems) == 0 }

// Verify checks path against target's rules for imported disks and says
// exactly what is wrong. An error means the file could not be read at all.
func Verify(path, target string) (VerifyReport, error) {
	rep := VerifyReport{Target: target, File: path, Problems: []string{}}
	format, err := Detect(path)
	if err != nil {
		return rep, err
	}
	rep.Format = format
	ft, _ := Lookup(format) // nil for a compressed file
	add := func(format string, args ...any) { rep.Problems = append(rep.Problems, fmt.Sprintf(format, args...)) }
	// check adds the problems a format's own check finds.
	check := func(c func(string) ([]string, error)) ([]string, error) {
		problems, err := c(path)
		rep.Problems = append(rep.Problems, problems...)
		return problems, err
	}
	// streamOptimized reads a VMDK's subformat; a problem if it cannot.
	streamOptimized := func() bool {
		if rep.Subformat, err = subformat(ft, path); err != nil {
			add("the VMDK cannot be read: %v", err)
			return false
		}
		return true
	}
	switch target {
	case "azure":
		if format != "vhd" {
			add("Azure takes a fixed VHD; this is %s (convert with: kiln convert %s --to vhd)", format, path)
			return rep, nil
		}
		if _, err := check(vhd.CheckAzure); err != nil {
			return rep, err
		}
	case "vsphere":
		switch format {
		case "ova":
			_, err := check(ft.Check)
			return rep, err
		case "vmdk":
			if !streamOptimized() {
				return rep, nil
			}
			if rep.Subformat != vmdk.StreamOptimized {
				add("vSphere imports a streamOptimized VMDK (or an OVA); this VMDK is %s (kiln convert %s --to vmdk)", rep.Subformat, path)
			}
		default:
			add("vSphere imports an OVA or a streamOptimized VMDK; this is %s (kiln convert %s --to ova)", format, path)
		}
	case "hyperv":
		if format != "vhdx" {
			add("Hyper-V generation 2 machines boot from VHDX; this is %s (kiln convert %s --to vhdx)", format, path)
			return rep, nil
		}
		problems, err := check(ft.Check)
		if err != nil {
			return rep, err
		}
		if len(problems) == 0 {
			rep.Problems = append(rep.Problems, checkDisk(path, true)...)
		}
	case "aws":
		switch format {
		case "raw", "vhd", "vhdx", "ova":
		case "vmdk":
			if !streamOptimized() {
				return rep, nil
			}
			if rep.Subformat != vmdk.StreamOptimized {
				add("VM Import takes VMDKs in the streamOptimized subformat; this one is %s", rep.Subformat)
			}
		default:
			add("VM Import takes raw, VHD, VHDX, streamOptimized VMDK or OVA images; this is %s", format)
		}
		if format != "ova" && len(rep.Problems) == 0 {
			rep.Problems = append(rep.Problems, checkDisk(path, false)...)
		}
	case "gcp":
		// Compute Engine imports a raw disk (disk.raw in a tar.gz); its
		// size must be a whole number of GiB (docs/boot-modes.md).
		if format != "raw" {
			add("Compute Engine imports a raw disk (disk.raw in a tar.gz); this is %s (kiln convert %s --to raw)", format, path)
			return rep, nil
		}
		rep.Problems = append(rep.Problems, checkDisk(path, false)...)
		if img, err := Open(path); err == nil {
			if size := img.Size(); size%(1<<30) != 0 {
				add("Compute Engine needs a disk size that is a whole number of GiB; this one is %d bytes (set disk { size = \"%dGiB\" })", size, (size+(1<<30)-1)>>30)
			}
			img.Close()
		}
	case "qemu":
		switch format {
		case "raw", "qcow2", "vmdk", "vhd", "vhdx":
			rep.Problems = append(rep.Problems, checkDisk(path, false)...)
		default:
			add("QEMU boots raw, qcow2, VMDK, VHD and VHDX disks; this is %s", format)
		}
	default:
		return rep, fmt.Errorf("unknown target %q (use %v)", target, Targets)
	}
	sort.Strings(rep.Problems)
	return rep, nil
}

// checkDisk opens the image as a virtual disk and checks it holds a
// partition table (read with disk.Inspect, as Kiln reads any disk);
// needUEFI also requires a GPT with an EFI system partition.
func checkDisk(path string, needUEFI bool) []string {
	img, err := Open(path)
	if err != nil {
		return []string{fmt.Sprintf("the disk cannot be read: %v", err)}
	}
	defer img.Close()
	var problems []string
	if img.Size() < 1<<20 {
		problems = append(problems, fmt.Sprintf("the virtual disk is only %d bytes", img.Size()))
	}
	in, err := disk.Inspect(img, img.Size())
	if err != nil {
		return append(problems, fmt.Sprintf("the disk has no readable partition table: %v", err))
	}
	if !needUEFI {
		return problems
	}
	if in.Table != "gpt" {
		return append(problems, "UEFI (Hyper-V generation 2) needs a GPT disk with an EFI system partition; this disk has none")
	}
	for _, p := range in.Partitions {
		if strings.EqualFold(p.TypeGUID, parttype.ESP.GUID) {
			return problems
		}
	}
	return append(problems, "UEFI (Hyper-V generation 2) needs an EFI system partition; the GPT has none")
}

// subformat reads the subformat of a file of format ft.
func subformat(ft *Format, path string) (string, error) {
	img, err := ft.Open(path)
	if err != nil {
		return "", err
	}
	defer img.Close()
	return img.Subformat(), nil
}
