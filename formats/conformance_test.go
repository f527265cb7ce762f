package formats

import (
	"context"
	"errors"
	"io"
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
				imagetest.Problems(t, c.ft.Check, out)
				testutil.Run(t, "tar", "-xf", out, "-C", filepath.Dir(out), "conformance-disk1.vmdk")
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
			conformanceReadEdges(t, img)
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

// conformanceReadEdges checks a reader at its edges: nothing past the end
// (io.EOF), an error for a negative offset, an empty read.
func conformanceReadEdges(t *testing.T, img image.Image) {
	n, err := img.ReadAt(make([]byte, 10), img.Size())
	require.Equal(t, 0, n)
	require.ErrorIs(t, err, io.EOF)
	_, err = img.ReadAt(make([]byte, 10), -1)
	require.Error(t, err)
	n, err = img.ReadAt(nil, 0)
	require.Equal(t, 0, n)
	require.NoError(t, err)
}

// TestConformanceDeterministic: every writer writes the same bytes for the
// same disk, into a new file as over a larger one (which it must
// truncate), and other bytes for another disk.
func TestConformanceDeterministic(t *testing.T) {
	dir := t.TempDir()
	const size = 96<<20 + 777
	_, src := imagetest.Source(t, dir, size)
	other := filepath.Join(dir, "other.raw")
	imagetest.Raw(t, other, size, 99)
	otherSrc := imagetest.OpenRaw(t, other)
	for _, c := range conformanceCases(t) {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			// One file name in three directories: a VMDK names its file.
			sum := func(sub string, src image.Source) string {
				p := filepath.Join(dir, sub, "disk"+c.ft.Ext)
				require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
				f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE, 0o644)
				require.NoError(t, err)
				require.NoError(t, c.ft.Write(context.Background(), f, src, c.opts))
				require.NoError(t, f.Close())
				h, err := sparse.SHA256(p)
				require.NoError(t, err)
				return h
			}
			a := sum("a", src)
			require.NoError(t, os.MkdirAll(filepath.Join(dir, "b"), 0o755))
			imagetest.RawWith(t, filepath.Join(dir, "b", "disk"+c.ft.Ext), 200<<20, map[int64][]byte{150 << 20: []byte("stale")})
			require.Equal(t, a, sum("b", src), "written over a larger file")
			require.NotEqual(t, a, sum("o", otherSrc), "another disk")
		})
	}
}

// TestConformanceWriterErrors: every writer stops on a cancelled context,
// before it starts and mid-way, and reports a failed source read and a
// failed write.
func TestConformanceWriterErrors(t *testing.T) {
	_, src := imagetest.Source(t, t.TempDir(), 64<<20)
	boom := errors.New("disk on fire")
	for _, c := range conformanceCases(t) {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			out := filepath.Join(t.TempDir(), "out"+c.ft.Ext)
			write := func(ctx context.Context, src image.Source, flag int) error {
				f, err := os.OpenFile(out, flag, 0o644)
				require.NoError(t, err)
				defer f.Close()
				return c.ft.Write(ctx, f, src, c.opts)
			}
			const create = os.O_RDWR | os.O_CREATE | os.O_TRUNC
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			require.ErrorIs(t, write(ctx, src, create), context.Canceled, "cancelled before")

			ctx, cancel = context.WithCancel(context.Background())
			defer cancel()
			cancelling := &imagetest.FaultySource{Source: src, Hook: func(n int64) error {
				if n == 2 {
					cancel()
				}
				return nil
			}}
			require.ErrorIs(t, write(ctx, cancelling, create), context.Canceled, "cancelled mid-way")

			failing := &imagetest.FaultySource{Source: src, Hook: func(int64) error { return boom }}
			require.ErrorIs(t, write(context.Background(), failing, create), boom)
			require.Error(t, write(context.Background(), src, os.O_RDONLY), "a read-only output")
		})
	}
}

// TestCheckMissingFile: a format's checker reports a file it cannot read as
// an error, not as a problem of the file.
func TestCheckMissingFile(t *testing.T) {
	n := 0
	for _, ft := range All() {
		if ft.Check != nil {
			problems, err := ft.Check(filepath.Join(t.TempDir(), "missing"+ft.Ext))
			require.ErrorIs(t, err, os.ErrNotExist, ft.Name)
			require.Empty(t, problems)
			n++
		}
	}
	require.Equal(t, 2, n, "vhdx and ova have checkers")
}

// Detect names short files and reports a file it cannot read, rather than
// taking it for a raw disk.
func TestDetectShortAndUnreadable(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct{ name, data, want string }{
		{"empty", "", "raw"},
		{"short", "QFI\xfb", "qcow2"},
		{"zstd", "\x28\xb5\x2f\xfd", CompressZstd},
	} {
		p := filepath.Join(dir, c.name)
		require.NoError(t, os.WriteFile(p, []byte(c.data), 0o644))
		kind, err := Detect(p)
		require.NoError(t, err, c.name)
		require.Equal(t, c.want, kind, c.name)
	}
	_, err := Detect(dir) // a directory opens, but does not read
	require.Error(t, err)
}
