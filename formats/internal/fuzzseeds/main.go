// Command fuzzseeds writes the seed corpora of the image readers' fuzz
// targets from real images made by other tools (qemu-img, GNU tar, zstd,
// xz, sgdisk, sfdisk, mke2fs and debugfs), into each target's
// testdata/fuzz/<Target>/ directory. Run it from the repository's root:
//
//	bash scripts/fuzz-seeds.sh
//
// Every image is made from the same small disk (3 MiB + 512 bytes, the
// words "kiln fuzz seed" at its start, across a 1 MiB boundary, across a
// 2 MiB boundary and at its end), so seeds stay a few kilobytes. Targets
// that take a whole file in formats/internal/imagetest's compact encoding
// (non-zero pieces and a size) get the files encoded; the others get the
// bytes. Files are named after what made them; running it again rewrites
// them (qemu-img writes random GUIDs and times, so bytes differ).
package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/kiln-build/kiln/formats/internal/imagetest"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "fuzzseeds:", err)
		os.Exit(1)
	}
}

var work string

func run() error {
	var err error
	if work, err = os.MkdirTemp("", "kiln-fuzzseeds-"); err != nil {
		return err
	}
	defer os.RemoveAll(work)
	src := filepath.Join(work, "seed.raw")
	if err := seedDisk(src); err != nil {
		return err
	}
	for _, step := range []func(string) error{qcow2Seeds, vmdkSeeds, vhdSeeds, vhdxSeeds, ovaSeeds, decompressSeeds, inspectSeeds, debugfsSeeds} {
		if err := step(src); err != nil {
			return err
		}
	}
	return nil
}

// seedDisk writes the disk every image is made from.
func seedDisk(p string) error {
	f, err := os.Create(p)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Truncate(3<<20 + 512); err != nil {
		return err
	}
	for _, off := range []int64{0, 1<<20 - 3, 2<<20 - 10, 3<<20 + 500} {
		if _, err := f.WriteAt([]byte("kiln fuzz seed"), off); err != nil {
			return err
		}
	}
	return nil
}

func sh(args ...string) error {
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Dir = work
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return nil
}

func output(args ...string) ([]byte, error) {
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Dir = work
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("%s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return out, nil
}

// corpus writes one corpus file (Go's "go test fuzz v1" encoding) of the
// values into <pkg>/testdata/fuzz/<target>/<name>.
func corpus(pkg, target, name string, vals ...any) error {
	var b strings.Builder
	b.WriteString("go test fuzz v1\n")
	for _, v := range vals {
		switch v := v.(type) {
		case []byte:
			fmt.Fprintf(&b, "[]byte(%q)\n", v)
		case bool, uint32:
			fmt.Fprintf(&b, "%T(%v)\n", v, v)
		case byte:
			fmt.Fprintf(&b, "byte(%q)\n", v)
		default:
			return fmt.Errorf("cannot encode %T", v)
		}
	}
	dir := filepath.Join(pkg, "testdata", "fuzz", target)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, name), []byte(b.String()), 0o644)
}

func read(name string) ([]byte, error) { return os.ReadFile(filepath.Join(work, name)) }

// qcow2Seeds: qemu-img qcow2 v3 and v2, plain and compressed, with 512-byte
// clusters (the smallest qcow2 allows) of a 256 KiB disk with data in two
// L2 tables' ranges, so the whole file is a few KiB; FuzzOpenQCOW2 takes
// the bytes.
func qcow2Seeds(string) error {
	if err := sh("qemu-img", "create", "-q", "-f", "qcow2", "-o", "cluster_size=512", "small.qcow2", "256K"); err != nil {
		return err
	}
	if err := sh("qemu-io", "-f", "qcow2", "-c", "write -P 0x6b 0 1k", "-c", "write -P 0x73 200k 600", "small.qcow2"); err != nil {
		return err
	}
	for name, opts := range map[string]string{
		"qemu-img-v3":            "cluster_size=512",
		"qemu-img-v2":            "cluster_size=512,compat=0.10",
		"qemu-img-v3-compressed": "cluster_size=512",
	} {
		args := []string{"qemu-img", "convert", "-f", "qcow2", "-O", "qcow2", "-o", opts}
		if strings.HasSuffix(name, "compressed") {
			args = append(args, "-c")
		}
		if err := sh(append(args, "small.qcow2", name+".qcow2")...); err != nil {
			return err
		}
		b, err := read(name + ".qcow2")
		if err != nil {
			return err
		}
		if err := corpus("formats/qcow2", "FuzzOpenQCOW2", name, b); err != nil {
			return err
		}
	}
	return nil
}

// qemuSeeds converts src with qemu-img to format under each name's
// options and writes each file, encoded, as a seed of target (with the
// FuzzReader targets' second value, false: the file as written).
func qemuSeeds(src, format, pkg, target string, opts map[string]string) error {
	for name, o := range opts {
		if err := sh("qemu-img", "convert", "-f", "raw", "-O", format, "-o", o, src, name); err != nil {
			return err
		}
		b, err := read(name)
		if err != nil {
			return err
		}
		if err := corpus(pkg, target, name, imagetest.FuzzEncode(b), false); err != nil {
			return err
		}
	}
	return nil
}

// vmdkSeeds: qemu-img's monolithicSparse and streamOptimized files, and its
// descriptor for a split disk, for FuzzOpenVMDKFile.
func vmdkSeeds(src string) error {
	return qemuSeeds(src, "vmdk", "formats/vmdk", "FuzzOpenVMDKFile", map[string]string{
		"qemu-img-monolithicSparse":     "subformat=monolithicSparse",
		"qemu-img-streamOptimized":      "subformat=streamOptimized",
		"qemu-img-twoGbMaxExtentSparse": "subformat=twoGbMaxExtentSparse",
	})
}

// vhdSeeds: qemu-img's dynamic and fixed VHDs, for FuzzOpenVHD.
func vhdSeeds(src string) error {
	return qemuSeeds(src, "vpc", "formats/vhd", "FuzzOpenVHD", map[string]string{
		"qemu-dynamic": "subformat=dynamic,force_size=on",
		"qemu-fixed":   "subformat=fixed,force_size=on",
	})
}

// vhdxSeeds: qemu-img's dynamic and fixed VHDX, and one with 32 MiB blocks
// and a 4 MiB log, for FuzzOpenVHDX.
func vhdxSeeds(src string) error {
	return qemuSeeds(src, "vhdx", "formats/vhdx", "FuzzOpenVHDX", map[string]string{
		"qemu-dynamic":        "subformat=dynamic",
		"qemu-fixed":          "subformat=fixed",
		"qemu-block32m-log4m": "block_size=32M,log_size=4M",
	})
}

// ovaSeeds: an OVA as other tools make one: qemu-img's streamOptimized
// disk, a descriptor, a SHA256 manifest (sha256sum), archived by GNU tar in
// USTAR format, for FuzzCheckOVA (encoded).
func ovaSeeds(src string) error {
	if err := sh("qemu-img", "convert", "-f", "raw", "-O", "vmdk", "-o", "subformat=streamOptimized", src, "vm-disk1.vmdk"); err != nil {
		return err
	}
	disk, err := read("vm-disk1.vmdk")
	if err != nil {
		return err
	}
	ovf := fmt.Sprintf(`<?xml version="1.0" encoding="UTF-8"?>
<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1">
  <References><File ovf:href="vm-disk1.vmdk" ovf:id="file1" ovf:size="%d"/></References>
  <DiskSection><Info>disks</Info><Disk ovf:diskId="vmdisk1" ovf:fileRef="file1" ovf:capacity="%d" ovf:capacityAllocationUnits="byte" ovf:format="http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized"/></DiskSection>
  <VirtualSystem ovf:id="vm"><Info>a virtual machine</Info></VirtualSystem>
</Envelope>
`, len(disk), 3<<20+512)
	if err := os.WriteFile(filepath.Join(work, "vm.ovf"), []byte(ovf), 0o644); err != nil {
		return err
	}
	sums, err := output("sha256sum", "vm.ovf", "vm-disk1.vmdk")
	if err != nil {
		return err
	}
	var mf strings.Builder
	for _, l := range strings.Split(strings.TrimSpace(string(sums)), "\n") {
		f := strings.Fields(l)
		fmt.Fprintf(&mf, "SHA256(%s)= %s\n", f[1], f[0])
	}
	if err := os.WriteFile(filepath.Join(work, "vm.mf"), []byte(mf.String()), 0o644); err != nil {
		return err
	}
	if err := sh("tar", "--format=ustar", "-cf", "vm.ova", "vm.ovf", "vm.mf", "vm-disk1.vmdk"); err != nil {
		return err
	}
	b, err := read("vm.ova")
	if err != nil {
		return err
	}
	return corpus("formats/ova", "FuzzCheckOVA", "gnu-tar-qemu-img", imagetest.FuzzEncode(b))
}

// decompressSeeds: the seed disk compressed by the zstd and xz tools,
// one stream and several (xz blocks of 1 MiB, zstd with a checksum and
// without the content size), for FuzzDecompress (bytes).
func decompressSeeds(src string) error {
	for name, args := range map[string][]string{
		"zstd-cli":            {"zstd", "-q", "-c", src},
		"zstd-cli-no-size":    {"zstd", "-q", "-c", "--no-content-size", "-C", src},
		"xz-cli":              {"xz", "-c", src},
		"xz-cli-1mib-blocks":  {"xz", "-c", "--block-size=1MiB", src},
		"xz-cli-check-sha256": {"xz", "-c", "-C", "sha256", "-1", src},
	} {
		b, err := output(args...)
		if err != nil {
			return err
		}
		if err := corpus("formats", "FuzzDecompress", name, b); err != nil {
			return err
		}
	}
	return nil
}

// inspectSeeds: partition tables by sgdisk (GPT with a 4-entry table, an
// ESP and an ext4 root made by mke2fs) and sfdisk (MBR), for FuzzInspect:
// the disk's first bytes and how many zero sectors follow.
func inspectSeeds(string) error {
	const size = 8 << 20
	gpt := filepath.Join(work, "gpt.raw")
	if err := os.WriteFile(gpt, nil, 0o644); err != nil {
		return err
	}
	if err := os.Truncate(gpt, size); err != nil {
		return err
	}
	// Partition 2 (root) starts at LBA 3, right after the one-sector
	// table, so its superblock is in the seed.
	if err := sh("sgdisk", "-a", "1", "-S", "4", "-n2:3:4098", "-t2:8304", "-c2:root", "-n1:4099:0", "-t1:EF00", gpt); err != nil {
		return err
	}
	if err := sh("mke2fs", "-q", "-t", "ext4", "-L", "root", "-E", "offset=1536", gpt, "2048k"); err != nil {
		return err
	}
	b, err := read("gpt.raw")
	if err != nil {
		return err
	}
	head := b[:1536+4096]
	if err := corpus("disk", "FuzzInspect", "sgdisk-gpt-ext4", head, uint32((size-len(head))/512)); err != nil {
		return err
	}
	mbr := filepath.Join(work, "mbr.raw")
	if err := os.WriteFile(mbr, nil, 0o644); err != nil {
		return err
	}
	if err := os.Truncate(mbr, size); err != nil {
		return err
	}
	cmd := exec.Command("sfdisk", "-q", mbr)
	cmd.Stdin = strings.NewReader("label: dos\nstart=2048, size=4096, type=83, bootable\nstart=6144, type=82\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("sfdisk: %v\n%s", err, out)
	}
	b, err = read("mbr.raw")
	if err != nil {
		return err
	}
	return corpus("disk", "FuzzInspect", "sfdisk-mbr", b[:512], uint32((size-512)/512))
}

// debugfsSeeds: what debugfs prints for "ls -p" of a filesystem mke2fs made
// from a tree with every kind of entry, for FuzzDebugfsListing: the root's
// listing (one directory) and the next level's (two).
func debugfsSeeds(string) error {
	tree := filepath.Join(work, "tree")
	for _, d := range []string{"etc/ssh", "usr/bin", "dev"} {
		if err := os.MkdirAll(filepath.Join(tree, d), 0o755); err != nil {
			return err
		}
	}
	files := map[string]string{"etc/hostname": "kiln\n", "etc/a file with spaces": "x", `etc/quote"d`: "y", "usr/bin/tool": "#!/bin/sh\n"}
	for p, c := range files {
		if err := os.WriteFile(filepath.Join(tree, p), []byte(c), 0o755); err != nil {
			return err
		}
	}
	if err := os.Symlink("/usr/bin/tool", filepath.Join(tree, "etc", "link")); err != nil {
		return err
	}
	if err := os.Link(filepath.Join(tree, "usr/bin/tool"), filepath.Join(tree, "usr/bin/hardlink")); err != nil {
		return err
	}
	img := filepath.Join(work, "fs.raw")
	if err := os.WriteFile(img, nil, 0o644); err != nil {
		return err
	}
	if err := os.Truncate(img, 8<<20); err != nil {
		return err
	}
	if err := sh("mke2fs", "-q", "-t", "ext4", "-d", tree, img); err != nil {
		return err
	}
	for name, c := range map[string]struct {
		cmds string
		dirs byte
	}{
		"debugfs-root":  {"ls -p \"/\"\n", 0},
		"debugfs-level": {"ls -p \"/\"\nls -p \"/etc\"\n", 1},
	} {
		cmd := exec.Command("debugfs", "-f", "-", img)
		cmd.Stdin = strings.NewReader(c.cmds)
		out, err := cmd.Output()
		if err != nil {
			return fmt.Errorf("debugfs: %v", err)
		}
		// The target lists "/" and then /d0, /d1...: name the second
		// listing's directory as the target does.
		out = bytes.ReplaceAll(out, []byte(`ls -p "/etc"`), []byte(`ls -p "/d0"`))
		if err := corpus("base", "FuzzDebugfsListing", name, out, c.dirs); err != nil {
			return err
		}
	}
	return nil
}
