package disk

import (
	"context"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kiln-build/kiln/internal/testutil"
	"github.com/kiln-build/kiln/platform"
)

// sfdiskView is what `sfdisk --json` says about a disk, the judge of Inspect.
type sfdiskView struct {
	PartitionTable struct {
		Label      string `json:"label"`
		Partitions []struct {
			Node  string `json:"node"`
			Start uint64 `json:"start"`
			Size  uint64 `json:"size"`
			Type  string `json:"type"`
			Name  string `json:"name"`
		} `json:"partitions"`
	} `json:"partitiontable"`
}

func judgeInspect(t *testing.T, img string) *Inspected {
	t.Helper()
	f, err := os.Open(img)
	require.NoError(t, err)
	defer f.Close()
	fi, err := f.Stat()
	require.NoError(t, err)
	in, err := Inspect(f, fi.Size())
	require.NoError(t, err)

	out, err := exec.Command("sfdisk", "--json", img).Output()
	require.NoError(t, err)
	var v sfdiskView
	require.NoError(t, json.Unmarshal(out, &v))
	want := map[string]string{"gpt": "gpt", "dos": "mbr"}[v.PartitionTable.Label]
	require.Equal(t, want, in.Table)
	require.Len(t, in.Partitions, len(v.PartitionTable.Partitions))
	for i, p := range v.PartitionTable.Partitions {
		got := in.Partitions[i]
		assert.Equal(t, p.Start*SectorSize, got.Start, p.Node)
		assert.Equal(t, p.Size*SectorSize, got.Size, p.Node)
		assert.True(t, strings.HasSuffix(p.Node, strconv.Itoa(got.Number)), "%s is number %d", p.Node, got.Number)
		if in.Table == "gpt" {
			assert.Equal(t, p.Type, got.TypeGUID, p.Node)
			assert.Equal(t, p.Name, got.Name, p.Node)
		} else {
			assert.Equal(t, p.Type, strconv.FormatUint(uint64(got.TypeMBR), 16), p.Node)
		}
		// blkid, probing at the partition's offset, names the same filesystem.
		out, _ := exec.Command("blkid", "-p", "-O", strconv.FormatUint(got.Start, 10), "-s", "TYPE", "-o", "value", img).Output()
		fs := strings.TrimSpace(string(out))
		if fs == "ext2" || fs == "ext3" {
			fs = "ext4"
		}
		assert.Equal(t, fs, got.FS, p.Node)
	}
	return in
}

func TestInspectGPTCustomLayout(t *testing.T) {
	testutil.Require(t, "mke2fs", "sfdisk", "blkid")
	img := filepath.Join(t.TempDir(), "disk.raw")
	l, err := Plan(customLayout())
	require.NoError(t, err)
	tree := layoutTree(t)
	mounts, err := SplitTree(tree, l, filepath.Join(t.TempDir(), "parts"))
	require.NoError(t, err)
	require.NoError(t, Write(context.Background(), img, l, Content{Tree: tree, Mounts: mounts, Log: io.Discard, ESP: []File{{Path: "EFI/BOOT/BOOTX64.EFI", Data: []byte("x")}}}))
	in := judgeInspect(t, img)
	root, err := in.Root()
	require.NoError(t, err)
	assert.Equal(t, l.Root().Start, root.Start)
	assert.Equal(t, "root", root.FSLabel)
}

func TestInspectMBR(t *testing.T) {
	testutil.Require(t, "mke2fs", "sfdisk", "blkid")
	img := filepath.Join(t.TempDir(), "disk.raw")
	l, err := Plan(Spec{Size: 1 << 30, Table: platform.MBR, Firmware: platform.Hybrid, ESPSize: 64 * MiB, IDs: IDs{Name: "mbr"}})
	require.NoError(t, err)
	require.NoError(t, Write(context.Background(), img, l, Content{Tree: smallTree(t), Log: io.Discard, ESP: []File{{Path: "EFI/BOOT/BOOTX64.EFI", Data: []byte("x")}}}))
	in := judgeInspect(t, img)
	root, err := in.Root()
	require.NoError(t, err)
	assert.Equal(t, l.Root().Start, root.Start)
}

// A disk laid out by sfdisk and mke2fs, as a person would by hand, with no
// root type or label: the largest ext4 partition is the root.
func TestInspectForeignDisk(t *testing.T) {
	testutil.Require(t, "mke2fs", "sfdisk", "blkid")
	img := filepath.Join(t.TempDir(), "foreign.raw")
	require.NoError(t, os.WriteFile(img, nil, 0o644))
	require.NoError(t, os.Truncate(img, 300<<20))
	testutil.RunStdin(t, "label: gpt\nstart=2048, size=100MiB, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4\nsize=150MiB, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4\n", "sfdisk", "-q", img)
	for _, off := range []string{"1048576", strconv.Itoa(1<<20 + 100<<20)} {
		testutil.Run(t, "mke2fs", "-q", "-F", "-t", "ext4", "-E", "offset="+off, img, "50M")
	}
	in := judgeInspect(t, img)
	root, err := in.Root()
	require.NoError(t, err)
	assert.Equal(t, 2, root.Number)
}

func TestInspectRejectsNonDisks(t *testing.T) {
	for name, data := range map[string][]byte{
		"empty sector":    make([]byte, 4096),
		"short":           {0x55, 0xAA},
		"gpt without hdr": func() []byte { b := make([]byte, 8192); b[446+4] = 0xEE; b[510], b[511] = 0x55, 0xAA; return b }(),
	} {
		_, err := Inspect(strings.NewReader(string(data)), int64(len(data)))
		assert.Error(t, err, name)
	}
	b := make([]byte, 1<<20)
	b[510], b[511] = 0x55, 0xAA
	in, err := Inspect(strings.NewReader(string(b)), int64(len(b)))
	require.NoError(t, err)
	_, err = in.Root()
	assert.ErrorIs(t, err, ErrNoRoot)
}

// FuzzInspect reads a disk whose first bytes are data and whose other
// sectors (sectors of them) read as zeros, as most of a real disk does:
// seeds stay small (testdata/fuzz/FuzzInspect holds tables made by sgdisk
// and sfdisk; see its README) and declared sizes vary independently.
func FuzzInspect(f *testing.F) {
	b := make([]byte, 64<<10)
	b[510], b[511] = 0x55, 0xAA
	f.Add(b, uint32(0))
	g := append([]byte(nil), b...)
	g[446+4] = 0xEE
	copy(g[512:], "EFI PART")
	f.Add(g, uint32(0))
	f.Fuzz(func(t *testing.T, data []byte, sectors uint32) {
		size := int64(len(data)) + int64(sectors)*SectorSize
		in, err := Inspect(zeroExtended{data, size}, size)
		if err != nil {
			return
		}
		for _, p := range in.Partitions {
			if p.Start+p.Size > uint64(size) || p.Size == 0 {
				t.Fatalf("partition %d (%d bytes at %d) is not inside the %d-byte disk", p.Number, p.Size, p.Start, size)
			}
		}
		_, _ = in.Root()
	})
}

// zeroExtended reads data, then zeros up to size.
type zeroExtended struct {
	data []byte
	size int64
}

func (z zeroExtended) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 || off >= z.size {
		return 0, io.EOF
	}
	n := 0
	if off < int64(len(z.data)) {
		n = copy(p, z.data[off:])
	}
	m := int(min(int64(len(p)), z.size-off))
	clear(p[n:m])
	if m < len(p) {
		return m, io.EOF
	}
	return m, nil
}
