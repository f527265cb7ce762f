package recipes

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestLoadLayout(t *testing.T) {
	r, _, diags := Load("testdata/valid/layout.hcl", LoadOptions{Library: testLibrary})
	require.False(t, diags.HasErrors(), "%v", diags)
	d := r.Image.Disk
	require.True(t, d.Auto)
	require.Zero(t, d.Size)
	require.Equal(t, 30, d.Headroom)
	require.Equal(t, "fleet-a", d.Seed)
	require.Equal(t, "5b2a1c3d-0e4f-4a5b-8c6d-7e8f90a1b2c3", d.GUID)
	require.False(t, d.Grow)
	require.Len(t, d.Partitions, 6)
	type row struct {
		Label, Type, TypeGUID string
		MBR                   byte
		Size                  uint64
		Rest                  bool
		FS, Mount, Options    string
	}
	var got []row
	for _, p := range d.Partitions {
		got = append(got, row{p.Label, p.Type, p.TypeGUID, p.TypeMBR, p.Size, p.Rest, p.Filesystem, p.Mount, p.Options})
	}
	require.Equal(t, []row{
		{"BIOS", "bios", "21686148-6449-6E6F-744E-656564454649", 0, 1 << 20, false, "none", "", ""},
		{"ESP", "esp", "C12A7328-F81F-11D2-BA4B-00A0C93EC93B", 0xEF, 128 << 20, false, "vfat", "/boot/efi", ""},
		{"boot", "linux", "0FC63DAF-8483-4772-8E79-3D69D8477DE4", 0x83, 512 << 20, false, "ext4", "/boot", ""},
		{"swap", "swap", "0657FD6D-A4AB-43C4-84E5-0933C84B4F4F", 0x82, 256 << 20, false, "swap", "", ""},
		{"var", "var", "4D21B016-B534-45C2-A9FB-5C16E091FD2D", 0x83, 1 << 30, false, "ext4", "/var", "nodev,nosuid"},
		{"root", "root", "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709", 0x83, 0, true, "ext4", "/", ""},
	}, got)
	require.Equal(t, "1A2B-3C4D", d.Partitions[1].UUID)
	require.Equal(t, "11111111-2222-4333-8444-555555555555", d.Partitions[5].GUID)
	require.Equal(t, 34, d.Partitions[5].Range.Line)
}

func TestMBRSignature(t *testing.T) {
	r, _, diags := Parse("r.hcl", []byte(`image "x" {
  version = "1.0.0"
  base "debian" { suite = "bookworm" }
  boot { firmware = "bios" }
  disk {
    size      = "2GiB"
    table     = "mbr"
    signature = "0x1A2B3C4D"
  }
}
`), LoadOptions{Library: testLibrary})
	require.False(t, diags.HasErrors(), "%v", diags)
	require.Equal(t, uint32(0x1a2b3c4d), r.Image.Disk.Signature)
}

func TestOutputBlock(t *testing.T) {
	r, _, diags := Parse("r.hcl", []byte(`image "x" {
  version = "1.0.0"
  base "debian" { suite = "bookworm" }
  output {
    formats          = ["raw", "qcow2", "vmdk", "vhd", "vhdx", "ova"]
    compress         = "xz"
    vmdk_subformat   = "monolithicSparse"
    vhd_subformat    = "dynamic"
    qcow2_compressed = true
    cpus             = 4
    memory           = "4GiB"
  }
}
`), LoadOptions{Library: testLibrary})
	require.False(t, diags.HasErrors(), "%v", diags)
	o := r.Image.Output
	require.Equal(t, []string{"raw", "qcow2", "vmdk", "vhd", "vhdx", "ova"}, o.Formats)
	require.Equal(t, "xz", o.Compress)
	require.Equal(t, "monolithicSparse", o.VMDKSubformat)
	require.Equal(t, "dynamic", o.VHDSubformat)
	require.True(t, o.QCOW2Compressed)
	require.Equal(t, 4, o.CPUs)
	require.Equal(t, 4096, o.MemoryMiB)
}
