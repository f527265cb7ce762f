package main

import (
	"context"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kiln-build/kiln/boottest"
	"github.com/kiln-build/kiln/components"
	"github.com/kiln-build/kiln/internal/sparse"
	"github.com/kiln-build/kiln/manifest"
	"github.com/kiln-build/kiln/platform"
	"github.com/stretchr/testify/require"
)

// The example image, converted by kiln convert to every format, is judged by
// qemu-img, round-trips losslessly, passes the platform checks, and boots in
// QEMU from each file with its tests passing inside the guest.
func TestE2EFormatsBootAndRoundTrip(t *testing.T) {
	requireE2E(t)
	m, dir := buildExample(t, t.TempDir(), "../../examples/boot-matrix.hcl", "firmware=uefi", "table=gpt")
	raw := filepath.Join(dir, m.Outputs[0].File)
	rawSum, err := sparse.SHA256(raw)
	require.NoError(t, err)
	var root manifest.Partition
	for _, p := range m.Disk.Partitions {
		if p.Mount == "/" {
			root = p
		}
	}
	work := t.TempDir()
	for _, c := range []struct {
		to, sub, qemuFmt, subformat, target string
	}{
		{"qcow2", "", "qcow2", "", "qemu"},
		{"vmdk", "streamOptimized", "vmdk", "streamOptimized", "vsphere"},
		{"vmdk", "monolithicSparse", "vmdk", "monolithicSparse", "qemu"},
		{"vhd", "fixed", "vpc", "fixed", "azure"},
		{"vhd", "dynamic", "vpc", "dynamic", "aws"},
		{"vhdx", "", "vhdx", "", "hyperv"},
	} {
		name := c.to + "-" + c.sub
		t.Run(name, func(t *testing.T) {
			out := filepath.Join(work, name+"."+c.to)
			args := []string{"convert", raw, "--to", c.to, "-o", out}
			if c.sub != "" {
				args = append(args, "--subformat", c.sub)
			}
			code, _, errOut := runKiln(t, args...)
			require.Equal(t, 0, code, errOut)

			// qemu-img is the judge.
			if c.qemuFmt != "vpc" { // qemu-img has no checker for VHD; kiln verify covers it
				o, err := exec.Command("qemu-img", "check", "-f", c.qemuFmt, out).CombinedOutput()
				require.NoError(t, err, string(o))
			}
			o, err := exec.Command("qemu-img", "compare", "-f", "raw", "-F", c.qemuFmt, raw, out).CombinedOutput()
			require.NoError(t, err, string(o))
			require.Contains(t, string(o), "Images are identical")
			o, err = exec.Command("qemu-img", "info", "-f", c.qemuFmt, "--output=json", out).Output()
			require.NoError(t, err)
			var info struct {
				Format      string `json:"format"`
				VirtualSize int64  `json:"virtual-size"`
			}
			require.NoError(t, json.Unmarshal(o, &info))
			require.Equal(t, c.qemuFmt, info.Format)
			require.Equal(t, int64(m.Disk.Size+(1<<20-1))>>20<<20, info.VirtualSize)

			// kiln verify accepts it for its platform.
			code, vout, _ := runKiln(t, "verify", "--target", c.target, out)
			require.Equal(t, 0, code, vout)

			// Round trip back to raw is lossless.
			back := filepath.Join(work, name+".back.raw")
			code, _, errOut = runKiln(t, "convert", out, "--to", "raw", "-o", back)
			require.Equal(t, 0, code, errOut)
			sum, err := sparse.SHA256(back)
			require.NoError(t, err)
			if c.sub != "fixed" { // a fixed VHD rounds the size up with zeros
				require.Equal(t, rawSum, sum)
			}
			os.Remove(back)

			// It boots from this very file (through a qcow2 overlay holding
			// only the injected test harness) and its tests pass.
			rep, err := boottest.Boot(context.Background(), boottest.Request{
				Image: out, RootOffset: root.Start, Firmware: platform.BootUEFI, Name: m.Name, Version: m.Version,
				Tests:   []components.Step{{Name: "booted", Timeout: time.Minute, Script: []byte("#!/bin/sh\nset -e\ntest -d /sys/firmware/efi\nfindmnt -n -o FSTYPE / | grep -qx ext4\n")}},
				WorkDir: t.TempDir(), ConsoleLog: filepath.Join(work, name+".serial.log"), Log: io.Discard,
			})
			require.NoError(t, err)
			require.Empty(t, rep.Health.Problems)
			require.Len(t, rep.Results, 1)
			require.Equal(t, manifest.Pass, rep.Results[0].Status, rep.Results[0].Output)
			os.Remove(out)
		})
	}

	// An OVA for vSphere.
	ova := filepath.Join(work, "image.ova")
	code, _, errOut := runKiln(t, "convert", raw, "--to", "ova", "-o", ova)
	require.Equal(t, 0, code, errOut)
	code, vout, _ := runKiln(t, "verify", "--target", "vsphere", ova)
	require.Equal(t, 0, code, vout)
	o, err := exec.Command("tar", "tf", ova).Output()
	require.NoError(t, err)
	members := strings.Fields(string(o))
	require.Len(t, members, 3)
	require.True(t, strings.HasSuffix(members[0], ".ovf"))
	require.True(t, strings.HasSuffix(members[1], ".mf"))
	require.True(t, strings.HasSuffix(members[2], ".vmdk"))
}
