package formats

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"sort"
)

// Targets are the platforms kiln verify knows.
var Targets = []string{"azure", "vsphere", "hyperv", "aws", "qemu"}

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
	add := func(format string, args ...any) { rep.Problems = append(rep.Problems, fmt.Sprintf(format, args...)) }
	switch target {
	case "azure":
		if format != "vhd" {
			add("Azure takes a fixed VHD; this is %s (convert with: kiln convert %s --to vhd)", format, path)
			return rep, nil
		}
		problems, err := CheckAzureVHD(path)
		if err != nil {
			return rep, err
		}
		rep.Problems = append(rep.Problems, problems...)
	case "vsphere":
		switch format {
		case "ova":
			problems, err := CheckOVA(path)
			if err != nil {
				return rep, err
			}
			rep.Problems = append(rep.Problems, problems...)
			return rep, nil
		case "vmdk":
			img, err := OpenVMDK(path)
			if err != nil {
				add("the VMDK cannot be read: %v", err)
				return rep, nil
			}
			rep.Subformat = img.Subformat()
			img.Close()
			if rep.Subformat != "streamOptimized" {
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
		problems, err := CheckVHDX(path)
		if err != nil {
			return rep, err
		}
		rep.Problems = append(rep.Problems, problems...)
		if len(problems) == 0 {
			rep.Problems = append(rep.Problems, checkDisk(path, true)...)
		}
	case "aws":
		switch format {
		case "raw", "vhd", "vhdx", "ova":
		case "vmdk":
			img, err := OpenVMDK(path)
			if err != nil {
				add("the VMDK cannot be read: %v", err)
				return rep, nil
			}
			rep.Subformat = img.Subformat()
			img.Close()
			if rep.Subformat != "streamOptimized" {
				add("VM Import takes VMDKs in the streamOptimized subformat; this one is %s", rep.Subformat)
			}
		default:
			add("VM Import takes raw, VHD, VHDX, streamOptimized VMDK or OVA images; this is %s", format)
		}
		if format != "ova" && len(rep.Problems) == 0 {
			rep.Problems = append(rep.Problems, checkDisk(path, false)...)
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

// espGUID is the EFI system partition type in GPT's on-disk byte order.
var espGUID = []byte{0x28, 0x73, 0x2A, 0xC1, 0x1F, 0xF8, 0xD2, 0x11, 0xBA, 0x4B, 0x00, 0xA0, 0xC9, 0x3E, 0xC9, 0x3B}

// checkDisk opens the image as a virtual disk and checks it holds a
// partition table; needUEFI also requires a GPT with an EFI system partition.
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
	head := make([]byte, 34*512)
	if _, err := img.ReadAt(head, 0); err != nil {
		return append(problems, fmt.Sprintf("reading the partition table: %v", err))
	}
	if head[510] != 0x55 || head[511] != 0xAA {
		problems = append(problems, "the disk has no partition table (no 0x55AA boot signature in its first sector)")
	}
	gpt := bytes.Equal(head[512:520], []byte("EFI PART"))
	if needUEFI {
		if !gpt {
			return append(problems, "UEFI (Hyper-V generation 2) needs a GPT disk with an EFI system partition; this disk has none")
		}
		entries := binary.LittleEndian.Uint64(head[512+72:])
		count := binary.LittleEndian.Uint32(head[512+80:])
		size := binary.LittleEndian.Uint32(head[512+84:])
		if entries != 2 || size < 128 || size > 1024 || count > 1024 {
			return append(problems, "the GPT header is not one Kiln can read")
		}
		table := make([]byte, int(count)*int(size))
		if _, err := img.ReadAt(table, 1024); err != nil {
			return append(problems, fmt.Sprintf("reading the GPT entries: %v", err))
		}
		found := false
		for i := 0; i < int(count); i++ {
			if bytes.Equal(table[i*int(size):i*int(size)+16], espGUID) {
				found = true
			}
		}
		if !found {
			problems = append(problems, "UEFI (Hyper-V generation 2) needs an EFI system partition; the GPT has none")
		}
	}
	return problems
}
