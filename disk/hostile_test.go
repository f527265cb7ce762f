package disk

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kiln-build/kiln/internal/testutil"
)

// Hostile partition tables, each made by sgdisk or sfdisk and then bent:
// tables and partitions that point past the end of the disk are refused
// with a clear error, and Inspect allocates little whatever the table
// claims (at most 1024 entries of 4 KiB are ever read).
func TestInspectHostileTables(t *testing.T) {
	testutil.Require(t, "sgdisk", "sfdisk")
	gpt := func(t *testing.T) []byte {
		p := filepath.Join(t.TempDir(), "gpt.raw")
		require.NoError(t, os.WriteFile(p, nil, 0o644))
		require.NoError(t, os.Truncate(p, 8<<20))
		testutil.Run(t, "sgdisk", "-n1:2048:+2M", "-t1:8300", p)
		b, err := os.ReadFile(p)
		require.NoError(t, err)
		return b
	}
	le32 := binary.LittleEndian.PutUint32
	le64 := binary.LittleEndian.PutUint64
	for _, c := range []struct {
		name, want string
		disk       func(t *testing.T) []byte
	}{
		{"GPT entry table past the end", "the GPT entry table (128 entries of 128 bytes at LBA 16382) ends at byte 8403968, beyond the disk's 8388608 bytes",
			func(t *testing.T) []byte { b := gpt(t); le64(b[512+72:], 16382); return b }},
		{"GPT of 1024 entries of 4 KiB past the end", "(1024 entries of 4096 bytes at LBA 8200) ends at byte 8392704, beyond the disk's 8388608 bytes",
			func(t *testing.T) []byte {
				b := gpt(t)
				le32(b[512+80:], 1024)
				le32(b[512+84:], 4096)
				le64(b[512+72:], 8200)
				return b
			}},
		{"GPT implausible entry count", "the GPT header is implausible (1000000 entries",
			func(t *testing.T) []byte { b := gpt(t); le32(b[512+80:], 1000000); return b }},
		{"GPT partition past the end", "GPT partition 1 spans LBA 2048 to 1099511627776, outside the disk's 8388608 bytes",
			func(t *testing.T) []byte { b := gpt(t); le64(b[1024+40:], 1<<40); return b }},
		{"MBR partition past the end", "MBR partition 1 ends at byte 2199023255552, beyond the disk's 1048576 bytes",
			func(t *testing.T) []byte {
				b := make([]byte, 1<<20)
				b[510], b[511] = 0x55, 0xAA
				e := b[446:]
				e[4] = 0x83
				le32(e[8:], 2048)
				le32(e[12:], 1<<32-2048)
				return b
			}},
	} {
		t.Run(c.name, func(t *testing.T) {
			b := c.disk(t)
			var err error
			alloc := testutil.Allocated(func() { _, err = Inspect(readerAt(b), int64(len(b))) })
			require.Error(t, err)
			require.Contains(t, err.Error(), c.want)
			require.Less(t, alloc, uint64(1<<20), "Inspect allocated %d bytes", alloc)
			t.Logf("%-45s %4d KiB  %v", c.name, alloc>>10, err)
		})
	}
}

type readerAt []byte

func (r readerAt) ReadAt(p []byte, off int64) (int, error) {
	if off >= int64(len(r)) {
		return 0, os.ErrClosed
	}
	n := copy(p, r[off:])
	if n < len(p) {
		return n, os.ErrClosed
	}
	return n, nil
}
