package formats

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kiln-build/kiln/formats/image"
	"github.com/kiln-build/kiln/formats/internal/imagetest"
	"github.com/kiln-build/kiln/internal/sparse"
	"github.com/kiln-build/kiln/internal/testutil"
)

// conformanceSize is not a multiple of 1 MiB, so formats that round the
// virtual size (fixed VHD) show it.
const conformanceSize = 80<<20 + 7*512

// conformanceCase is one format and subformat of the registry.
type conformanceCase struct {
	name string
	ft   *Format
	opts Options
}

// conformanceCases lists every format of the registry with each of its
// subformats, and qcow2 plain and compressed.
func conformanceCases(t *testing.T) []conformanceCase {
	var cases []conformanceCase
	for _, ft := range All() {
		subs := ft.Subformats
		if len(subs) == 0 {
			subs = []string{""}
		}
		for _, sub := range subs {
			o := Options{Options: image.Options{Subformat: sub}, Name: "conformance", Firmware: "efi"}
			cases = append(cases, conformanceCase{strings.TrimSuffix(ft.Name+"/"+sub, "/"), ft, o})
		}
		if ft.Name == "qcow2" {
			o := Options{Options: image.Options{Compress: true}}
			cases = append(cases, conformanceCase{"qcow2/compressed", ft, o})
		}
	}
	require.GreaterOrEqual(t, len(cases), 10)
	return cases
}

// TestConformance writes every format and subformat of the registry from a
// real raw disk (GPT, ESP, ext4 with files) and judges each file with
// qemu-img (info: format and virtual size; check; compare with the raw
// disk), then reads it back with Kiln's own reader (Open) and compares the
// virtual disk's sha256 with the raw disk's. An OVA is judged by its disk.
func TestConformance(t *testing.T) {
	testutil.Require(t, "qemu-img", "sgdisk", "mke2fs", "tar")
	dir := t.TempDir()
	raw := imagetest.GPTDisk(t, dir, conformanceSize)
	rawSum, err := sparse.SHA256(raw)
	require.NoError(t, err)
	src := imagetest.OpenRaw(t, raw)
	for _, c := range conformanceCases(t) {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			out := filepath.Join(t.TempDir(), "conformance"+c.ft.Ext)
			f, err := os.Create(out)
			require.NoError(t, err)
			require.NoError(t, c.ft.Write(context.Background(), f, src, c.opts))
			require.NoError(t, f.Close())

			kind, err := Detect(out)
			require.NoError(t, err)
			require.Equal(t, c.ft.Name, kind)
			disk, qemuName := out, c.ft.QEMUName
			if c.ft.Name == "ova" {
				problems, err := c.ft.Check(out)
				require.NoError(t, err)
				require.Empty(t, problems)
				imagetest.Run(t, "tar", "-xf", out, "-C", filepath.Dir(out), "conformance-disk1.vmdk")
				disk, qemuName = filepath.Join(filepath.Dir(out), "conformance-disk1.vmdk"), "vmdk"
			}

			info := imagetest.Info(t, qemuName, disk)
			require.Equal(t, qemuName, info.Format)
			require.Equal(t, c.ft.VirtualSize(conformanceSize, c.opts), info.VirtualSize)
			switch qemuName {
			case "qcow2", "vmdk", "vhdx": // qemu-img check knows these
				require.Contains(t, imagetest.QemuOK(t, "check", "-f", qemuName, disk), "No errors were found")
			}
			imagetest.QemuOK(t, "compare", "-f", "raw", "-F", qemuName, raw, disk)

			img, err := Open(disk)
			require.NoError(t, err)
			defer img.Close()
			require.Equal(t, qemuName == "vpc", img.Format() == "vhd")
			if c.ft.Name != "ova" {
				require.Equal(t, c.ft.Name, img.Format())
				if sub := c.opts.Subformat; sub != "" {
					require.Equal(t, sub, img.Subformat())
				}
			}
			sum, tailZero, err := image.VirtualSHA256(context.Background(), img, conformanceSize)
			require.NoError(t, err)
			require.True(t, tailZero)
			require.Equal(t, rawSum, sum)
		})
	}
}
