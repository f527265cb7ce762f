package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kiln-build/kiln/formats"
	"github.com/kiln-build/kiln/internal/sparse"
	"github.com/kiln-build/kiln/internal/testutil"
	"github.com/stretchr/testify/require"
)

// gptDisk makes a 64 MiB raw disk with a GPT holding an ESP and a Linux
// partition, and some data, with sgdisk.
func gptDisk(t *testing.T, esp bool) string {
	testutil.Require(t, "sgdisk")
	p := filepath.Join(t.TempDir(), "disk.raw")
	require.NoError(t, os.WriteFile(p, nil, 0o644))
	require.NoError(t, os.Truncate(p, 64<<20))
	typ := "EF00"
	if !esp {
		typ = "8300"
	}
	out, err := exec.Command("sgdisk", "-n1:2048:+16M", "-t1:"+typ, "-n2:0:0", "-t2:8300", p).CombinedOutput()
	require.NoError(t, err, string(out))
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	require.NoError(t, err)
	_, err = f.WriteAt([]byte(strings.Repeat("kiln data ", 100000)), 20<<20)
	require.NoError(t, err)
	require.NoError(t, f.Close())
	return p
}

func TestConvertEveryFormatAndBack(t *testing.T) {
	testutil.Require(t, "qemu-img")
	raw := gptDisk(t, true)
	want, err := sparse.SHA256(raw)
	require.NoError(t, err)
	dir := t.TempDir()
	for _, c := range []struct{ to, sub, qfmt string }{
		{"qcow2", "", "qcow2"}, {"vmdk", "streamOptimized", "vmdk"}, {"vmdk", "monolithicSparse", "vmdk"},
		{"vhd", "fixed", "vpc"}, {"vhd", "dynamic", "vpc"}, {"vhdx", "", "vhdx"},
	} {
		out := filepath.Join(dir, c.to+c.sub)
		args := []string{"convert", "--to", c.to, raw, "-o", out}
		if c.sub != "" {
			args = append(args, "--subformat", c.sub)
		}
		code, stdout, stderr := runKiln(t, args...)
		require.Equal(t, 0, code, stderr)
		require.Contains(t, stdout, out)
		o, err := exec.Command("qemu-img", "compare", "-f", "raw", "-F", c.qfmt, raw, out).CombinedOutput()
		require.NoError(t, err, "%s: %s", c.to, o)
		back := out + ".back.raw"
		code, _, stderr = runKiln(t, "convert", out, "--to", "raw", "-o", back)
		require.Equal(t, 0, code, stderr)
		got, err := sparse.SHA256(back)
		require.NoError(t, err)
		require.Equal(t, want, got, "round trip through %s %s", c.to, c.sub)
	}

	// Compressed inputs are read too, and an existing output is kept.
	zst := filepath.Join(dir, "disk.raw.zst")
	code, _, stderr := runKiln(t, "convert", raw, "--to", "raw", "--compress", "zstd", "-o", zst)
	require.Equal(t, 0, code, stderr)
	q := filepath.Join(dir, "from-zst.qcow2")
	code, _, stderr = runKiln(t, "convert", zst, "--to", "qcow2", "-o", q)
	require.Equal(t, 0, code, stderr)
	o, err := exec.Command("qemu-img", "compare", "-f", "raw", "-F", "qcow2", raw, q).CombinedOutput()
	require.NoError(t, err, string(o))
	// A format compressed as a whole, read back through the decompression.
	vx := filepath.Join(dir, "disk.vhdx.xz")
	code, _, stderr = runKiln(t, "convert", raw, "--to", "vhdx", "--compress", "xz", "-o", vx)
	require.Equal(t, 0, code, stderr)
	kind, err := formats.Detect(vx)
	require.NoError(t, err)
	require.Equal(t, "xz", kind)
	back := filepath.Join(dir, "from-vhdx-xz.raw")
	code, _, stderr = runKiln(t, "convert", vx, "--to", "raw", "-o", back)
	require.Equal(t, 0, code, stderr)
	got, err := sparse.SHA256(back)
	require.NoError(t, err)
	require.Equal(t, want, got, "round trip through vhdx.xz")

	before, _ := os.ReadFile(q)
	code, _, stderr = runKiln(t, "convert", raw, "--to", "qcow2", "-o", q)
	require.Equal(t, 2, code)
	require.Contains(t, stderr, "--force")
	after, _ := os.ReadFile(q)
	require.Equal(t, before, after, "an existing output is never overwritten without --force")

	code, _, _ = runKiln(t, "convert", raw, "--to", "iso")
	require.Equal(t, 2, code)
}

func TestVerifyTargets(t *testing.T) {
	testutil.Require(t, "qemu-img")
	dir := t.TempDir()
	uefi, bios := gptDisk(t, true), gptDisk(t, false)
	conv := func(in, to, sub, name string) string {
		out := filepath.Join(dir, name)
		args := []string{"convert", in, "--to", to, "-o", out}
		if sub != "" {
			args = append(args, "--subformat", sub)
		}
		code, _, stderr := runKiln(t, args...)
		require.Equal(t, 0, code, stderr)
		return out
	}
	fixed := conv(uefi, "vhd", "fixed", "fixed.vhd")
	dynamic := conv(uefi, "vhd", "dynamic", "dynamic.vhd")
	vhdx := conv(uefi, "vhdx", "", "uefi.vhdx")
	biosVHDX := conv(bios, "vhdx", "", "bios.vhdx")
	qcow := conv(uefi, "qcow2", "", "disk.qcow2")
	stream := conv(uefi, "vmdk", "streamOptimized", "stream.vmdk")
	mono := conv(uefi, "vmdk", "monolithicSparse", "mono.vmdk")
	ova := conv(uefi, "ova", "", "disk.ova")
	for _, c := range []struct {
		target, file string
		code         int
		says         string
	}{
		{"azure", fixed, 0, "meets azure's rules"},
		{"azure", dynamic, 1, "fixed"},
		{"azure", qcow, 1, "Azure takes a fixed VHD"},
		{"hyperv", vhdx, 0, "meets hyperv's rules"},
		{"hyperv", biosVHDX, 1, "EFI system partition"},
		{"hyperv", fixed, 1, "VHDX"},
		{"aws", fixed, 0, "meets aws's rules"},
		{"aws", qcow, 1, "VM Import takes"},
		{"qemu", qcow, 0, "meets qemu's rules"},
		{"vsphere", stream, 0, "meets vsphere's rules"},
		{"vsphere", mono, 1, "streamOptimized"},
		{"vsphere", ova, 0, "meets vsphere's rules"},
		{"vsphere", qcow, 1, "OVA"},
		{"aws", ova, 0, "meets aws's rules"},
		{"qemu", uefi, 0, "meets qemu's rules"},
	} {
		code, out, stderr := runKiln(t, "verify", "--target", c.target, c.file)
		require.Equal(t, c.code, code, "%s %s: %s%s", c.target, c.file, out, stderr)
		require.Contains(t, out, c.says, "%s %s", c.target, c.file)
	}
	code, _, _ := runKiln(t, "verify", "--target", "gcp", fixed)
	require.Equal(t, 2, code)
	code, _, _ = runKiln(t, "verify", fixed)
	require.Equal(t, 2, code)
}
