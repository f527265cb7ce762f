package ova

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"encoding/xml"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kiln-build/kiln/formats/image"
	"github.com/kiln-build/kiln/formats/internal/imagetest"
	"github.com/kiln-build/kiln/formats/vmdk"
	"github.com/kiln-build/kiln/internal/testutil"
)

// ovaTestSource is a 64 MiB sparse raw disk with some data.
func ovaTestSource(t testing.TB, dir string) (string, *image.RawFile) {
	raw := filepath.Join(dir, "small.raw")
	imagetest.RawWith(t, raw, 64<<20, map[int64][]byte{
		0:           testutil.Binaries(t, 2<<20),
		40 << 20:    testutil.Text(1 << 20),
		64<<20 - 10: []byte("last bytes"),
	})
	src, err := image.OpenRaw(raw)
	require.NoError(t, err)
	t.Cleanup(func() { src.Close() })
	return raw, src
}

func ovaWrite(t testing.TB, path string, src image.Source, spec OVFSpec, sha1 bool) {
	t.Helper()
	f, err := os.Create(path)
	require.NoError(t, err)
	require.NoError(t, Write(context.Background(), f, src, spec, sha1, image.Options{}))
	require.NoError(t, f.Close())
}

// ovaTestMember is a member of a hand-built archive.
type ovaTestMember struct {
	name string
	data []byte
}

// ovaTestMembers reads an archive with archive/tar.
func ovaTestMembers(t testing.TB, path string) []ovaTestMember {
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	tr := tar.NewReader(f)
	var out []ovaTestMember
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		require.NoError(t, err)
		b, err := io.ReadAll(tr)
		require.NoError(t, err)
		out = append(out, ovaTestMember{h.Name, b})
	}
}

func ovaTestTar(t testing.TB, path string, format tar.Format, members []ovaTestMember) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, m := range members {
		h := &tar.Header{Name: m.name, Size: int64(len(m.data)), Mode: 0o644, Typeflag: tar.TypeReg, Format: format}
		if format == tar.FormatPAX {
			h.PAXRecords = map[string]string{"comment": "pax"}
		}
		require.NoError(t, tw.WriteHeader(h))
		_, err := tw.Write(m.data)
		require.NoError(t, err)
	}
	require.NoError(t, tw.Close())
	require.NoError(t, os.WriteFile(path, buf.Bytes(), 0o644))
}

// ovaUSTARHeaders checks every header of a tar file for POSIX USTAR magic.
func ovaUSTARHeaders(t testing.TB, path string) []string {
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	var names []string
	for off := 0; off+512 <= len(b); {
		h := b[off : off+512]
		if image.IsZero(h) {
			break
		}
		require.Equal(t, "ustar\x0000", string(h[257:265]), "member at %d", off)
		require.Contains(t, []byte{'0', 0}, h[156])
		var size int64
		_, err := fmt.Sscanf(strings.Trim(string(h[124:136]), "\x00 "), "%o", &size)
		require.NoError(t, err)
		names = append(names, strings.TrimRight(string(h[:100]), "\x00"))
		off += 512 + int((size+511)/512*512)
	}
	return names
}

func TestOVAWriteAndCheck(t *testing.T) {
	dir := t.TempDir()
	raw, src := ovaTestSource(t, dir)
	for _, c := range []struct {
		firmware string
		sha1     bool
	}{{"efi", false}, {"bios", true}} {
		t.Run(c.firmware, func(t *testing.T) {
			p := filepath.Join(dir, "vm-"+c.firmware+".ova")
			spec := OVFSpec{Name: "debian-minimal", CPUs: 4, MemoryMiB: 2048, Firmware: c.firmware, DiskFile: "debian-minimal-disk1.vmdk"}
			ovaWrite(t, p, src, spec, c.sha1)

			// Order and format.
			names := []string{"debian-minimal.ovf", "debian-minimal.mf", "debian-minimal-disk1.vmdk"}
			require.Equal(t, names, ovaUSTARHeaders(t, p))
			if testutil.Have(t, "tar") {
				out := testutil.Run(t, "tar", "tf", p)
				require.Equal(t, strings.Join(names, "\n")+"\n", out)
				t.Logf("tar tvf:\n%s", testutil.Run(t, "tar", "tvf", p))
			}
			imagetest.Problems(t, Check, p)

			members := ovaTestMembers(t, p)
			ovf, mf, disk := members[0].data, string(members[1].data), members[2].data

			// The manifest.
			digest := func(b []byte) string {
				if c.sha1 {
					s := sha1.Sum(b)
					return hex.EncodeToString(s[:])
				}
				s := sha256.Sum256(b)
				return hex.EncodeToString(s[:])
			}
			algo := map[bool]string{false: "SHA256", true: "SHA1"}[c.sha1]
			require.Equal(t, fmt.Sprintf("%s(%s)= %s\n%s(%s)= %s\n", algo, names[0], digest(ovf), algo, names[2], digest(disk)), mf)

			// The descriptor.
			var env struct {
				Files []struct {
					Href string `xml:"href,attr"`
					Size int64  `xml:"size,attr"`
				} `xml:"References>File"`
				Disks []struct {
					Capacity string `xml:"capacity,attr"`
					Units    string `xml:"capacityAllocationUnits,attr"`
					Format   string `xml:"format,attr"`
				} `xml:"DiskSection>Disk"`
				System struct {
					Name string `xml:"Name"`
					OS   struct {
						Type string `xml:"osType,attr"`
					} `xml:"OperatingSystemSection"`
					Configs []struct {
						Key   string `xml:"key,attr"`
						Value string `xml:"value,attr"`
					} `xml:"VirtualHardwareSection>Config"`
					Items []struct {
						ResourceType int    `xml:"ResourceType"`
						Quantity     int    `xml:"VirtualQuantity"`
						SubType      string `xml:"ResourceSubType"`
						HostResource string `xml:"HostResource"`
					} `xml:"VirtualHardwareSection>Item"`
				} `xml:"VirtualSystem"`
			}
			require.NoError(t, xml.Unmarshal(ovf, &env))
			require.Equal(t, names[2], env.Files[0].Href)
			require.EqualValues(t, len(disk), env.Files[0].Size)
			require.Equal(t, fmt.Sprint(64<<20), env.Disks[0].Capacity)
			require.Equal(t, "byte", env.Disks[0].Units)
			require.Equal(t, "http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized", env.Disks[0].Format)
			require.Equal(t, "debian-minimal", env.System.Name)
			require.Equal(t, "debian11_64Guest", env.System.OS.Type)
			require.Equal(t, "firmware", env.System.Configs[0].Key)
			require.Equal(t, c.firmware, env.System.Configs[0].Value)
			types := map[int]int{}
			for _, it := range env.System.Items {
				types[it.ResourceType] = it.Quantity
			}
			require.Equal(t, map[int]int{3: 4, 4: 2048, 6: 0, 17: 0}, types)
			if testutil.Have(t, "xmllint") {
				ovfPath := filepath.Join(dir, "x.ovf")
				require.NoError(t, os.WriteFile(ovfPath, ovf, 0o644))
				testutil.Run(t, "xmllint", "--noout", ovfPath)
			} else {
				t.Log("xmllint not installed: well-formedness checked by encoding/xml only")
			}

			// The disk, as qemu-img sees it.
			diskPath := filepath.Join(dir, names[2])
			require.NoError(t, os.WriteFile(diskPath, disk, 0o644))
			img, err := vmdk.Open(diskPath)
			require.NoError(t, err)
			require.Equal(t, vmdk.StreamOptimized, img.Subformat())
			imagetest.SameDisk(t, src, img)
			require.NoError(t, img.Close())
			if testutil.Have(t, "qemu-img") {
				info := imagetest.InfoMap(t, diskPath)
				require.Equal(t, "vmdk", info["format"])
				require.EqualValues(t, 64<<20, info["virtual-size"])
				require.Equal(t, vmdk.StreamOptimized, info["format-specific"].(map[string]any)["data"].(map[string]any)["create-type"])
				testutil.Run(t, "qemu-img", "check", "-f", "vmdk", diskPath)
				testutil.Run(t, "qemu-img", "compare", "-f", "raw", "-F", "vmdk", raw, diskPath)
			}

			// Reproducible.
			again := filepath.Join(dir, "again.ova")
			ovaWrite(t, again, src, spec, c.sha1)
			a, err := os.ReadFile(p)
			require.NoError(t, err)
			b, err := os.ReadFile(again)
			require.NoError(t, err)
			require.True(t, bytes.Equal(a, b))
		})
	}
}

func TestOVASpecDefaultsAndErrors(t *testing.T) {
	spec, err := OVFSpec{Name: "My VM"}.withDefaults(1000)
	require.NoError(t, err)
	require.Equal(t, OVFSpec{Name: "My VM", CPUs: 2, MemoryMiB: 1024, Firmware: "bios", DiskFile: "My-VM-disk1.vmdk", Capacity: 1024, OSType: "debian11_64Guest"}, spec)
	ovf, mf := spec.ovaMemberNames()
	require.Equal(t, "My-VM.ovf", ovf)
	require.Equal(t, "My-VM.mf", mf)
	for _, bad := range []OVFSpec{
		{},
		{Name: "x", Firmware: "uefi"},
		{Name: "x", DiskFile: "dir/disk.vmdk"},
		{Name: "x", DiskFile: strings.Repeat("a", 101)},
		{Name: "x", Capacity: 10},
		{Name: "x", CPUs: -1},
	} {
		_, err := bad.withDefaults(1000)
		require.Error(t, err, "%+v", bad)
	}
	// The name is escaped in the XML.
	d := ovaDescriptor(OVFSpec{Name: `a<b>&"c"`, CPUs: 1, MemoryMiB: 1, Firmware: "efi", DiskFile: "d.vmdk", OSType: "x"}, vmdk.StreamStats{Size: 1})
	var v struct{}
	require.NoError(t, xml.Unmarshal(d, &v))
	require.Contains(t, string(d), "a&lt;b&gt;&amp;&#34;c&#34;")

	dir := t.TempDir()
	_, src := ovaTestSource(t, dir)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	f, err := os.Create(filepath.Join(dir, "c.ova"))
	require.NoError(t, err)
	defer f.Close()
	require.ErrorIs(t, Write(ctx, f, src, OVFSpec{Name: "c"}, false, image.Options{}), context.Canceled)
	left, err := filepath.Glob(filepath.Join(dir, ".kiln-ova-*"))
	require.NoError(t, err)
	require.Empty(t, left, "temporary disk left behind")
}

func TestCheckOVAReportsProblems(t *testing.T) {
	dir := t.TempDir()
	_, src := ovaTestSource(t, dir)
	good := filepath.Join(dir, "good.ova")
	ovaWrite(t, good, src, OVFSpec{Name: "vm", DiskFile: "disk.vmdk"}, false)
	m := ovaTestMembers(t, good)
	ovf, mf, disk := m[0], m[1], m[2]
	sum := func(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }
	manifest := func(ms ...ovaTestMember) ovaTestMember {
		var b strings.Builder
		for _, x := range ms {
			fmt.Fprintf(&b, "SHA256(%s)= %s\n", x.name, sum(x.data))
		}
		return ovaTestMember{mf.name, []byte(b.String())}
	}
	withOVF := func(old, new string) ovaTestMember {
		require.Contains(t, string(ovf.data), old)
		return ovaTestMember{ovf.name, []byte(strings.Replace(string(ovf.data), old, new, 1))}
	}
	sizeAttr := fmt.Sprintf(`ovf:size="%d"`, len(disk.data))

	// A monolithicSparse disk in place of the streamOptimized one.
	mono := imagetest.WriteFile(t, filepath.Join(dir, "mono.vmdk"), src, image.Options{Subformat: vmdk.MonolithicSparse}, vmdk.Write)
	monoData, err := os.ReadFile(mono)
	require.NoError(t, err)
	monoDisk := ovaTestMember{disk.name, monoData}
	monoOVF := withOVF(sizeAttr, fmt.Sprintf(`ovf:size="%d"`, len(monoData)))
	badSizeOVF := withOVF(sizeAttr, `ovf:size="12345"`)
	extra := ovaTestMember{"notes.txt", []byte("hello")}
	brokenOVF := ovaTestMember{ovf.name, ovf.data[:len(ovf.data)/2]}
	badDigest := ovaTestMember{mf.name, []byte(strings.Replace(string(mf.data), sum(disk.data), sum(nil), 1))}
	flatOVF := withOVF("#streamOptimized", "#monolithicSparse")
	vs := string(ovf.data)
	noVS := ovaTestMember{ovf.name, []byte(vs[:strings.Index(vs, "  <VirtualSystem")] + "</Envelope>\n")}
	twoOVF := withOVF("</References>", `  <File ovf:href="notes.txt" ovf:id="file2" ovf:size="5"/>
  </References>`)

	for _, c := range []struct {
		name    string
		format  tar.Format
		members []ovaTestMember
		want    []string
	}{
		{"good", tar.FormatUSTAR, []ovaTestMember{ovf, mf, disk}, nil},
		{"no manifest", tar.FormatUSTAR, []ovaTestMember{ovf, disk}, nil},
		{"disk first", tar.FormatUSTAR, []ovaTestMember{disk, ovf, mf}, []string{"first member is \"disk.vmdk\"", "must come right after the descriptor"}},
		{"manifest last", tar.FormatUSTAR, []ovaTestMember{ovf, disk, mf}, []string{"must come right after the descriptor"}},
		{"bad digest", tar.FormatUSTAR, []ovaTestMember{ovf, badDigest, disk}, []string{"SHA256 digest of \"disk.vmdk\" does not match"}},
		{"size mismatch", tar.FormatUSTAR, []ovaTestMember{badSizeOVF, manifest(badSizeOVF, disk), disk}, []string{"ovf:size=\"12345\""}},
		{"missing disk", tar.FormatUSTAR, []ovaTestMember{ovf, manifest(ovf), {"other.vmdk", disk.data}}, []string{"references \"disk.vmdk\", which is not in the archive", "member \"other.vmdk\" is not referenced"}},
		{"monolithicSparse inside", tar.FormatUSTAR, []ovaTestMember{monoOVF, manifest(monoOVF, monoDisk), monoDisk}, []string{"is a monolithicSparse VMDK, not streamOptimized"}},
		{"wrong ovf:format", tar.FormatUSTAR, []ovaTestMember{flatOVF, manifest(flatOVF, disk), disk}, []string{"ovf:format="}},
		{"unreferenced file", tar.FormatUSTAR, []ovaTestMember{ovf, manifest(ovf, disk, extra), disk, extra}, []string{"\"notes.txt\" is not referenced"}},
		{"files out of order", tar.FormatUSTAR, []ovaTestMember{twoOVF, manifest(twoOVF, extra, disk), extra, disk}, []string{"not in the order of the descriptor's References"}},
		{"files in order", tar.FormatUSTAR, []ovaTestMember{twoOVF, manifest(twoOVF, extra, disk), disk, extra}, nil},
		{"not in manifest", tar.FormatUSTAR, []ovaTestMember{ovf, manifest(ovf), disk}, []string{"\"disk.vmdk\" is not listed in the manifest"}},
		{"no virtual system", tar.FormatUSTAR, []ovaTestMember{noVS, manifest(noVS, disk), disk}, []string{"describes no VirtualSystem"}},
		{"broken xml", tar.FormatUSTAR, []ovaTestMember{brokenOVF, manifest(brokenOVF, disk), disk}, []string{"not well-formed OVF"}},
		{"gnu tar", tar.FormatGNU, []ovaTestMember{ovf, mf, disk}, []string{"GNU tar header"}},
		{"pax tar", tar.FormatPAX, []ovaTestMember{ovf, mf, disk}, []string{"PAX extended header"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := filepath.Join(dir, strings.ReplaceAll(c.name, " ", "-")+".ova")
			ovaTestTar(t, p, c.format, c.members)
			problems := imagetest.Problems(t, Check, p, c.want...)
			t.Logf("%s: %q", c.name, problems)
		})
	}

	// Not a tar at all. (A missing file is an error, not a problem: see
	// formats' TestCheckMissingFile.)
	junk := filepath.Join(dir, "junk.ova")
	require.NoError(t, os.WriteFile(junk, bytes.Repeat([]byte("junk"), 300), 0o644))
	problems, err := Check(junk)
	require.NoError(t, err)
	require.NotEmpty(t, problems)
}
