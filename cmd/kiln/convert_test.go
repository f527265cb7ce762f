package main

import (
	"crypto/x509/pkix"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kiln-build/kiln/formats"
	"github.com/kiln-build/kiln/internal/authenticode"
	"github.com/kiln-build/kiln/internal/fat32"
	"github.com/kiln-build/kiln/internal/livedir"
	"github.com/kiln-build/kiln/internal/sparse"
	"github.com/kiln-build/kiln/internal/testutil"
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
	code, _, _ := runKiln(t, "verify", "--target", "oracle", fixed)
	require.Equal(t, 2, code)
	code, _, _ = runKiln(t, "verify", fixed)
	require.Equal(t, 2, code)
}

// espDisk is a 1 GiB GPT disk whose ESP holds files, written with Kiln's
// FAT writer.
func espDisk(t *testing.T, files map[string][]byte) string {
	testutil.Require(t, "sgdisk")
	p := filepath.Join(t.TempDir(), "disk.raw")
	require.NoError(t, os.WriteFile(p, nil, 0o644))
	require.NoError(t, os.Truncate(p, 1<<30))
	out, err := exec.Command("sgdisk", "-n1:2048:+40M", "-t1:EF00", "-n2:0:0", "-t2:8300", p).CombinedOutput()
	require.NoError(t, err, string(out))
	b := fat32.New()
	for name, data := range files {
		require.NoError(t, b.AddBytes(name, data))
	}
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	require.NoError(t, err)
	defer f.Close()
	require.NoError(t, b.Write(f, 1<<20, 40<<20, fat32.Options{}))
	return p
}

// signedBy signs a test EFI binary with a leaf certificate issued by a CA
// with the given common name.
func signedBy(t *testing.T, caCN string) []byte {
	caKey, ca := testutil.RSACert(t, pkix.Name{CommonName: caCN, Organization: []string{"Microsoft Corporation"}}, nil, nil)
	key, cert := testutil.RSACert(t, pkix.Name{CommonName: "test loader publisher"}, ca, caKey)
	signed, err := authenticode.Sign(testutil.TinyPE(), &authenticode.KeyPair{Key: key, Cert: cert})
	require.NoError(t, err)
	return signed
}

// kiln verify --target azure|gcp reports Secure Boot readiness from the
// ESP; --secure-boot makes it a rule. gcp is a target of its own.
func TestVerifySecureBootReadiness(t *testing.T) {
	ready := espDisk(t, map[string][]byte{
		"EFI/BOOT/BOOTX64.EFI": signedBy(t, "Microsoft Corporation UEFI CA 2011"),
		"EFI/BOOT/grubx64.efi": signedBy(t, "Debian Secure Boot CA"),
	})
	code, out, stderr := runKiln(t, "verify", "--target", "gcp", "--secure-boot", ready)
	require.Equal(t, 0, code, "%s%s", out, stderr)
	require.Contains(t, out, "meets gcp's rules (raw)")
	require.Contains(t, out, "Secure Boot: ready for GCP Shielded VM")
	require.Contains(t, out, "EFI/BOOT/BOOTX64.EFI: signed by /CN=test loader publisher (issuer /O=Microsoft Corporation/CN=Microsoft Corporation UEFI CA 2011)")

	unsigned := espDisk(t, map[string][]byte{"EFI/BOOT/BOOTX64.EFI": testutil.TinyPE()})
	code, out, _ = runKiln(t, "verify", "--target", "gcp", unsigned)
	require.Equal(t, 0, code, "readiness is reported, not a rule, without --secure-boot")
	require.Contains(t, out, "Secure Boot: not ready for GCP Shielded VM:\n  - EFI/BOOT/BOOTX64.EFI is not signed")
	code, out, _ = runKiln(t, "verify", "--target", "gcp", "--secure-boot", "--json", unsigned)
	require.Equal(t, 1, code)
	var rep struct {
		Target     string
		Problems   []string
		SecureBoot struct {
			Ready    bool
			Problems []string
			Chain    []struct{ Path string }
		} `json:"secure_boot"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &rep))
	require.Equal(t, "gcp", rep.Target)
	require.Empty(t, rep.Problems)
	require.False(t, rep.SecureBoot.Ready)
	require.Equal(t, "EFI/BOOT/BOOTX64.EFI", rep.SecureBoot.Chain[0].Path)

	// On Azure (a fixed VHD of the same disk) a loader under another CA is not ready.
	own := espDisk(t, map[string][]byte{"EFI/BOOT/BOOTX64.EFI": signedBy(t, "My Own CA")})
	vhd := filepath.Join(t.TempDir(), "own.vhd")
	code, _, stderr = runKiln(t, "convert", own, "--to", "vhd", "-o", vhd)
	require.Equal(t, 0, code, stderr)
	code, out, _ = runKiln(t, "verify", "--target", "azure", "--secure-boot", vhd)
	require.Equal(t, 1, code)
	require.Contains(t, out, "meets azure's rules")
	require.Contains(t, out, "not by a CA in Azure Trusted Launch's default db")

	// gcp's own rules: raw, a whole number of GiB.
	small := gptDisk(t, true)
	code, out, _ = runKiln(t, "verify", "--target", "gcp", small)
	require.Equal(t, 1, code)
	require.Contains(t, out, "whole number of GiB")
	require.Contains(t, out, "Secure Boot: not ready", "an ESP without a filesystem")
	code, _, stderr = runKiln(t, "verify", "--target", "qemu", "--secure-boot", small)
	require.Equal(t, 2, code)
	require.Contains(t, stderr, "azure and gcp only")
}

// kiln convert sweeps what killed conversions left beside the output: the
// lockless 140 MB leftovers of Kilns before live directories (once older
// than livedir.StaleAfter), and a live directory whose process died; a
// conversion still running (its directory held by a live process) keeps
// its directory. Nothing else in the directory is touched.
func TestConvertSweepsDeadTemporaries(t *testing.T) {
	raw := gptDisk(t, true)
	dir := t.TempDir()
	old := filepath.Join(dir, convertTempPrefix+"123456789")
	require.NoError(t, os.Mkdir(old, 0o700))
	require.NoError(t, os.WriteFile(filepath.Join(old, "output"), []byte("half a disk"), 0o644))
	stale := time.Now().Add(-2 * livedir.StaleAfter)
	require.NoError(t, os.Chtimes(old, stale, stale))
	live, err := livedir.Create(dir, convertTempPrefix, 0o700)
	require.NoError(t, err)
	defer live.Remove()
	keep := filepath.Join(dir, ".kiln-convert.txt") // not a temporary: another prefix
	require.NoError(t, os.WriteFile(keep, nil, 0o644))

	code, _, stderr := runKiln(t, "convert", raw, "--to", "qcow2", "-o", filepath.Join(dir, "out.qcow2"))
	require.Equal(t, 0, code, stderr)
	require.NoDirExists(t, old)
	require.DirExists(t, live.Path, "a live conversion's directory survives")
	require.FileExists(t, keep)
	left, _ := filepath.Glob(filepath.Join(dir, convertTempPrefix+"*"))
	require.Equal(t, []string{live.Path}, left, "the conversion removed its own temporary directory")
}
