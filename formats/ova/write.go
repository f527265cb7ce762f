// Package ova writes and checks OVA archives for vSphere: Write makes a
// USTAR archive holding, in this order, an OVF 1.0 descriptor
// as VMware writes it, a manifest of SHA-256 (or SHA-1) digests, and one
// streamOptimized VMDK that Write writes from the source.
//
// The tar header of the disk needs its size before its content, so the
// VMDK is first written to a temporary file next to dst (hashed while it
// is written), then copied into the archive. USTAR limits a member to
// 8 GiB - 1 bytes of compressed disk; a larger disk is an error (OVF's
// ovf:chunkSize splitting is not implemented).
//
// The virtual machine: CPUs, memory, an LSI Logic SCSI controller (the
// VMDK's ddb.adapterType says "lsilogic" too) with the disk on it, no
// network adapter, and the firmware as a vmw:Config key. The virtual
// hardware family is vmx-14 (ESXi 6.7 and later); the default guest type
// is debian11_64Guest, which vSphere 7.0 and later know (set OSType to
// "debian12_64Guest" for vSphere 8 and Debian 12).
//
// Check (check.go) applies the rules vSphere applies when it deploys an
// OVA, without vSphere. An OVA is not a disk: the package does not open one
// as a virtual disk, and it does not write OVF chunks, certificates or more
// than one disk. The disk itself is package vmdk's streamOptimized VMDK.
package ova

import (
	"archive/tar"
	"bufio"
	"context"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/kiln-build/kiln/formats/image"
	"github.com/kiln-build/kiln/formats/vmdk"
)

// OVFSpec describes the virtual machine of an OVA.
type OVFSpec struct {
	Name      string // virtual system name; also names the .ovf and .mf members
	CPUs      int    // default 2
	MemoryMiB int    // default 1024
	Firmware  string // "efi" or "bios" (the default)
	DiskFile  string // the disk's member name, default Name + "-disk1.vmdk"
	Capacity  int64  // virtual disk size in bytes; default (and minimum) src.Size()
	OSType    string // vmw:osType, default "debian11_64Guest"
}

const (
	ovaDefaultOSType  = "debian11_64Guest"
	ovaHardware       = "vmx-14"
	ovaVMDKFormatURL  = "http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized"
	ovaMaxUSTARMember = 1<<33 - 1
)

// ovaModTime is every member's modification time, fixed so that the same
// input gives the same archive.
var ovaModTime = time.Unix(0, 0)

// ovaFileBase turns a virtual system name into a member file name base.
func ovaFileBase(name string) string {
	b := strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_', r == '.':
			return r
		}
		return '-'
	}, name)
	return strings.Trim(b, ".")
}

// ovaValidName checks a member name: one path element of printable ASCII
// that fits a USTAR name field.
func ovaValidName(name string) error {
	if name == "" || len(name) > 100 || name == "." || name == ".." || strings.ContainsAny(name, "/\\") {
		return fmt.Errorf("ova: member name %q must be one file name of 1 to 100 bytes", name)
	}
	for _, r := range name {
		if r < 0x21 || r > 0x7e {
			return fmt.Errorf("ova: member name %q must be printable ASCII without spaces", name)
		}
	}
	return nil
}

// withDefaults validates spec and fills in its defaults.
func (spec OVFSpec) withDefaults(srcSize int64) (OVFSpec, error) {
	if strings.TrimSpace(spec.Name) == "" {
		return spec, errors.New("ova: the virtual system needs a name")
	}
	if ovaFileBase(spec.Name) == "" {
		return spec, fmt.Errorf("ova: name %q has no characters usable in a file name", spec.Name)
	}
	if spec.CPUs == 0 {
		spec.CPUs = 2
	}
	if spec.MemoryMiB == 0 {
		spec.MemoryMiB = 1024
	}
	if spec.CPUs < 0 || spec.MemoryMiB < 0 {
		return spec, fmt.Errorf("ova: %d CPUs and %d MiB of memory are not a machine", spec.CPUs, spec.MemoryMiB)
	}
	switch spec.Firmware {
	case "":
		spec.Firmware = "bios"
	case "efi", "bios":
	default:
		return spec, fmt.Errorf("ova: firmware %q is neither \"efi\" nor \"bios\"", spec.Firmware)
	}
	if spec.DiskFile == "" {
		spec.DiskFile = ovaFileBase(spec.Name) + "-disk1.vmdk"
	}
	if err := ovaValidName(spec.DiskFile); err != nil {
		return spec, err
	}
	if spec.Capacity == 0 {
		spec.Capacity = srcSize
	}
	if spec.Capacity < srcSize {
		return spec, fmt.Errorf("ova: capacity %d is smaller than the disk (%d bytes)", spec.Capacity, srcSize)
	}
	spec.Capacity = (spec.Capacity + vmdk.Sector - 1) / vmdk.Sector * vmdk.Sector
	if spec.OSType == "" {
		spec.OSType = ovaDefaultOSType
	}
	return spec, nil
}

// ovaMemberNames returns the .ovf and .mf member names.
func (spec OVFSpec) ovaMemberNames() (ovf, mf string) {
	base := ovaFileBase(spec.Name)
	if len(base) > 96 {
		base = base[:96]
	}
	return base + ".ovf", base + ".mf"
}

// Write writes an OVA of src to dst (from offset 0, replacing its
// content): the .ovf descriptor, the .mf manifest (SHA-256, or SHA-1 if
// sha1 is true) and a streamOptimized VMDK written from src with
// o.Workers compression workers. The archive is USTAR, members in that
// order, with fixed owners and times, so it is reproducible. dst is not
// fsynced.
func Write(ctx context.Context, dst *os.File, src image.Source, spec OVFSpec, sha1 bool, o image.Options) error {
	spec, err := spec.withDefaults(src.Size())
	if err != nil {
		return err
	}
	ovfName, mfName := spec.ovaMemberNames()
	if spec.DiskFile == ovfName || spec.DiskFile == mfName {
		return fmt.Errorf("ova: disk file name %q collides with the descriptor or manifest", spec.DiskFile)
	}
	newHash, algo := sha256.New, "SHA256"
	if sha1 {
		newHash, algo = ovaSHA1, "SHA1"
	}

	// The disk, to a temporary file beside dst, hashed on the way.
	tmp, err := os.CreateTemp(filepath.Dir(dst.Name()), ".kiln-ova-*.vmdk")
	if err != nil {
		tmp, err = os.CreateTemp("", "kiln-ova-*.vmdk")
		if err != nil {
			return err
		}
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	diskHash := newHash()
	bw := bufio.NewWriterSize(io.MultiWriter(tmp, diskHash), 1<<20)
	st, err := vmdk.WriteStream(ctx, bw, spec.DiskFile, src, spec.Capacity, o.Workers)
	if err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	if st.Size > ovaMaxUSTARMember {
		return fmt.Errorf("ova: the compressed disk has %d bytes, more than a USTAR member can hold (8 GiB - 1)", st.Size)
	}

	ovf := ovaDescriptor(spec, st)
	ovfHash := newHash()
	ovfHash.Write(ovf)
	mf := fmt.Sprintf("%s(%s)= %s\n%s(%s)= %s\n",
		algo, ovfName, hex.EncodeToString(ovfHash.Sum(nil)),
		algo, spec.DiskFile, hex.EncodeToString(diskHash.Sum(nil)))

	if _, err := vmdk.StartFile(dst); err != nil {
		return err
	}
	out := bufio.NewWriterSize(dst, 1<<20)
	tw := tar.NewWriter(out)
	member := func(name string, size int64) error {
		return tw.WriteHeader(&tar.Header{
			Typeflag: tar.TypeReg,
			Name:     name,
			Size:     size,
			Mode:     0o644,
			ModTime:  ovaModTime,
			Format:   tar.FormatUSTAR,
		})
	}
	if err := member(ovfName, int64(len(ovf))); err != nil {
		return err
	}
	if _, err := tw.Write(ovf); err != nil {
		return err
	}
	if err := member(mfName, int64(len(mf))); err != nil {
		return err
	}
	if _, err := io.WriteString(tw, mf); err != nil {
		return err
	}
	if err := member(spec.DiskFile, st.Size); err != nil {
		return err
	}
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		return err
	}
	if err := ovaCopy(ctx, tw, tmp, st.Size); err != nil {
		return err
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return out.Flush()
}

func ovaSHA1() hash.Hash { return sha1.New() }

// ovaCopy copies n bytes, checking ctx between chunks.
func ovaCopy(ctx context.Context, w io.Writer, r io.Reader, n int64) error {
	buf := make([]byte, 1<<20)
	for n > 0 {
		if err := ctx.Err(); err != nil {
			return err
		}
		c := min(n, int64(len(buf)))
		if _, err := io.ReadFull(r, buf[:c]); err != nil {
			return err
		}
		if _, err := w.Write(buf[:c]); err != nil {
			return err
		}
		n -= c
	}
	return nil
}

// ovaEsc escapes text for XML content and attribute values.
func ovaEsc(s string) string {
	var b strings.Builder
	xml.EscapeText(&b, []byte(s))
	return b.String()
}

// ovaDescriptor is the OVF 1.0 envelope, laid out as VMware's ovftool
// writes it (rasd elements in the schema's alphabetical order).
func ovaDescriptor(spec OVFSpec, st vmdk.StreamStats) []byte {
	var b strings.Builder
	p := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	name := ovaEsc(spec.Name)
	p(`<?xml version="1.0" encoding="UTF-8"?>
<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:cim="http://schemas.dmtf.org/wbem/wscim/1/common" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1" xmlns:rasd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData" xmlns:vmw="http://www.vmware.com/schema/ovf" xmlns:vssd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_VirtualSystemSettingData" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
  <References>
    <File ovf:href="%s" ovf:id="file1" ovf:size="%d"/>
  </References>
  <DiskSection>
    <Info>Virtual disk information</Info>
    <Disk ovf:capacity="%d" ovf:capacityAllocationUnits="byte" ovf:diskId="vmdisk1" ovf:fileRef="file1" ovf:format="%s" ovf:populatedSize="%d"/>
  </DiskSection>
  <VirtualSystem ovf:id="%s">
    <Info>A virtual machine</Info>
    <Name>%s</Name>
    <OperatingSystemSection ovf:id="96" vmw:osType="%s">
      <Info>The kind of installed guest operating system</Info>
    </OperatingSystemSection>
    <VirtualHardwareSection>
      <Info>Virtual hardware requirements</Info>
      <System>
        <vssd:ElementName>Virtual Hardware Family</vssd:ElementName>
        <vssd:InstanceID>0</vssd:InstanceID>
        <vssd:VirtualSystemIdentifier>%s</vssd:VirtualSystemIdentifier>
        <vssd:VirtualSystemType>%s</vssd:VirtualSystemType>
      </System>
      <Item>
        <rasd:AllocationUnits>hertz * 10^6</rasd:AllocationUnits>
        <rasd:Description>Number of Virtual CPUs</rasd:Description>
        <rasd:ElementName>%d virtual CPU(s)</rasd:ElementName>
        <rasd:InstanceID>1</rasd:InstanceID>
        <rasd:ResourceType>3</rasd:ResourceType>
        <rasd:VirtualQuantity>%d</rasd:VirtualQuantity>
      </Item>
      <Item>
        <rasd:AllocationUnits>byte * 2^20</rasd:AllocationUnits>
        <rasd:Description>Memory Size</rasd:Description>
        <rasd:ElementName>%dMB of memory</rasd:ElementName>
        <rasd:InstanceID>2</rasd:InstanceID>
        <rasd:ResourceType>4</rasd:ResourceType>
        <rasd:VirtualQuantity>%d</rasd:VirtualQuantity>
      </Item>
      <Item>
        <rasd:Address>0</rasd:Address>
        <rasd:Description>SCSI Controller</rasd:Description>
        <rasd:ElementName>SCSI Controller 0</rasd:ElementName>
        <rasd:InstanceID>3</rasd:InstanceID>
        <rasd:ResourceSubType>lsilogic</rasd:ResourceSubType>
        <rasd:ResourceType>6</rasd:ResourceType>
      </Item>
      <Item>
        <rasd:AddressOnParent>0</rasd:AddressOnParent>
        <rasd:ElementName>Hard Disk 1</rasd:ElementName>
        <rasd:HostResource>ovf:/disk/vmdisk1</rasd:HostResource>
        <rasd:InstanceID>4</rasd:InstanceID>
        <rasd:Parent>3</rasd:Parent>
        <rasd:ResourceType>17</rasd:ResourceType>
      </Item>
      <vmw:Config ovf:required="false" vmw:key="firmware" vmw:value="%s"/>
    </VirtualHardwareSection>
  </VirtualSystem>
</Envelope>
`,
		ovaEsc(spec.DiskFile), st.Size,
		spec.Capacity, ovaVMDKFormatURL, min(st.Grains*vmdk.GrainSize, spec.Capacity),
		name, name, ovaEsc(spec.OSType),
		name, ovaHardware,
		spec.CPUs, spec.CPUs,
		spec.MemoryMiB, spec.MemoryMiB,
		spec.Firmware)
	return []byte(b.String())
}
