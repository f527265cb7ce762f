package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/kiln-build/kiln/boottest"
	"github.com/kiln-build/kiln/components"
	"github.com/kiln-build/kiln/manifest"
	"github.com/kiln-build/kiln/platform"
	"github.com/stretchr/testify/require"
)

// buildExample builds an example with kiln build --json and returns the manifest.
func buildExample(t *testing.T, images, recipe string, vars ...string) (*manifest.Manifest, string) {
	t.Helper()
	args := []string{"build", "--json", "--images", images, "--cache", sharedCache(t)}
	for _, v := range vars {
		args = append(args, "-var", v)
	}
	code, out, errOut := runKiln(t, append(args, recipe)...)
	require.Equal(t, 0, code, "stdout:\n%s\nstderr:\n%s", out, errOut)
	var res struct{ Path string }
	require.NoError(t, json.Unmarshal([]byte(out), &res))
	markBuilt(recipe)
	return readManifest(t, res.Path), res.Path
}

// Every boot mode on every partition table builds, boots under the firmware
// it claims (both for hybrid), and is clean for the independent checkers.
func TestE2EBootMatrix(t *testing.T) {
	requireE2E(t)
	images := t.TempDir()
	for _, c := range []struct{ firmware, table string }{
		{"uefi", "gpt"}, {"bios", "gpt"}, {"hybrid", "gpt"}, {"bios", "mbr"}, {"uefi", "mbr"}, {"hybrid", "mbr"},
	} {
		t.Run(c.firmware+"-"+c.table, func(t *testing.T) {
			m, dir := buildExample(t, images, "../../examples/boot-matrix.hcl", "firmware="+c.firmware, "table="+c.table)
			require.Equal(t, platform.Firmware(c.firmware), m.Boot.Firmware)
			require.Equal(t, platform.Table(c.table), m.Boot.PartitionTable)
			want := platform.Firmware(c.firmware).Boots()
			var booted []platform.Boot
			for _, h := range m.Health {
				booted = append(booted, h.Firmware)
				require.True(t, h.MultiUser, "%s: multi-user reached", h.Firmware)
				require.Empty(t, h.Problems)
			}
			require.Equal(t, want, booted)
			checkBootsOverlap(t, m)
			require.Len(t, m.Tests, 3*len(want))
			for _, tr := range m.Tests {
				require.Equal(t, manifest.Pass, tr.Status, "%s under %s: %s", tr.Name, tr.Firmware, tr.Output)
			}
			img := filepath.Join(dir, m.Outputs[0].File)
			checkDisk(t, img, m)
			// A copy on a disk 1 GiB larger grows its root partition and filesystem at boot.
			if c.firmware != "hybrid" {
				checkGrows(t, img, m, platform.Boot(c.firmware))
			}
			if c.firmware == "uefi" && c.table == "gpt" {
				// The enforcing firmware TestE2ESecureBootDistro passes under
				// refuses the unsigned image secure_boot = "off" builds.
				require.Equal(t, platform.SecureBootOff, m.Boot.SecureBoot)
				checkRefusedUnderSecureBoot(t, img)
			}
		})
	}
}

// checkBootsOverlap checks that the boots of a build under two firmwares
// ran at once when the host has a core for every vCPU of both
// (boottest.Concurrent): the test stage took less than the two boots' QEMU
// times added up. Otherwise they ran in turn, and it took at least that.
func checkBootsOverlap(t *testing.T, m *manifest.Manifest) {
	t.Helper()
	if len(m.Health) < 2 {
		return
	}
	var sum float64
	for _, h := range m.Health {
		sum += h.BootSeconds
	}
	stage := m.StageSeconds("test")
	if boottest.Concurrent(len(m.Health), m.Health[0].VCPUs, runtime.NumCPU()) {
		require.Less(t, stage, sum, "the %d boots (%d vCPU(s) each, %d cores) ran at once", len(m.Health), m.Health[0].VCPUs, runtime.NumCPU())
	} else {
		require.GreaterOrEqual(t, stage, sum, "the %d boots ran one after another", len(m.Health))
	}
	t.Logf("test stage %.1f s; boots %.1f s added up", stage, sum)
}

func checkGrows(t *testing.T, img string, m *manifest.Manifest, firmware platform.Boot) {
	var root manifest.Partition
	for _, p := range m.Disk.Partitions {
		if p.Mount == "/" {
			root = p
		}
	}
	const grow = 1 << 30
	work := t.TempDir()
	test := components.Step{Name: "grown", Timeout: 2 * time.Minute, Script: []byte(fmt.Sprintf(`#!/bin/sh
set -e
part=$(findmnt -n -o SOURCE /)
size=$(lsblk -bno SIZE "$part")
fs=$(df -B1 --output=size / | tail -1)
echo "partition $size bytes, filesystem $fs bytes"
test "$size" -ge %d
test "$fs" -ge %d
`, root.Size+grow-(2<<20), root.Size+grow-(200<<20)))}
	rep, err := boottest.Boot(context.Background(), boottest.Request{
		Image: img, RootOffset: root.Start, Firmware: firmware, Name: m.Name, Version: m.Version,
		Tests: []components.Step{test}, WorkDir: work, ConsoleLog: filepath.Join(work, "serial.log"), Log: io.Discard, GrowBy: grow,
	})
	require.NoError(t, err)
	require.Len(t, rep.Results, 1)
	console, _ := os.ReadFile(filepath.Join(work, "serial.log"))
	require.Equal(t, manifest.Pass, rep.Results[0].Status, "%s\nconsole tail:\n%s", rep.Results[0].Output, tail(string(console), 40))
}

// A declared layout with separate /boot and /var plus swap boots under both
// firmwares, and its mounts are checked inside the guest.
func TestE2ECustomLayout(t *testing.T) {
	requireE2E(t)
	m, dir := buildExample(t, t.TempDir(), "../../examples/custom-layout.hcl")
	require.Len(t, m.Health, 2)
	checkBootsOverlap(t, m)
	require.Len(t, m.Tests, 6)
	for _, tr := range m.Tests {
		require.Equal(t, manifest.Pass, tr.Status, "%s under %s: %s", tr.Name, tr.Firmware, tr.Output)
	}
	var labels []string
	for _, p := range m.Disk.Partitions {
		labels = append(labels, p.Label+":"+p.Filesystem+":"+p.Mount)
	}
	require.Equal(t, []string{"BIOS::", "ESP:vfat:/boot/efi", "boot:ext4:/boot", "swap:swap:", "var:ext4:/var", "root:ext4:/"}, labels)
	checkDisk(t, filepath.Join(dir, m.Outputs[0].File), m)
}

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
