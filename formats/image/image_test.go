package image

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestForEachBlockVisitsOnlyData(t *testing.T) {
	p := filepath.Join(t.TempDir(), "src.raw")
	f, err := os.Create(p)
	require.NoError(t, err)
	require.NoError(t, f.Truncate(64<<20))
	_, _ = f.WriteAt([]byte{1}, 5)
	_, _ = f.WriteAt(make([]byte, 1<<20), 8<<20) // explicit zeros: skipped
	_, _ = f.WriteAt([]byte{2}, 64<<20-1)
	require.NoError(t, f.Close())
	src, err := OpenRaw(p)
	require.NoError(t, err)
	defer src.Close()
	var offs []int64
	require.NoError(t, ForEachBlock(src, 65536, func(off int64, data []byte) error {
		offs = append(offs, off)
		require.Len(t, data, 65536)
		return nil
	}))
	require.Equal(t, []int64{0, 64<<20 - 65536}, offs)
}

// ReadPieces splits a read at piece boundaries, cuts it at the end with
// io.EOF, and refuses a negative offset as malformed input.
func TestReadPieces(t *testing.T) {
	disk := []byte("0123456789") // pieces of 4: "0123" "4567" "89"
	var calls []string
	read := func(b []byte, i, in int64) error {
		calls = append(calls, fmt.Sprint(i, in, len(b)))
		copy(b, disk[i*4+in:])
		return nil
	}
	p := make([]byte, 8)
	n, err := ReadPieces(p, 3, 10, 4, "test", read)
	require.ErrorIs(t, err, io.EOF)
	require.Equal(t, 7, n)
	require.Equal(t, "3456789", string(p[:n]))
	require.Equal(t, []string{"0 3 1", "1 0 4", "2 0 2"}, calls)

	n, err = ReadPieces(p[:2], 4, 10, 4, "test", read)
	require.NoError(t, err)
	require.Equal(t, "45", string(p[:n]))
	n, err = ReadPieces(p, 10, 10, 4, "test", read)
	require.Equal(t, 0, n)
	require.ErrorIs(t, err, io.EOF)
	_, err = ReadPieces(p, -1, 10, 4, "test", read)
	var fe *FormatError
	require.ErrorAs(t, err, &fe)
	require.Equal(t, "test", fe.Format)

	boom := errors.New("boom")
	n, err = ReadPieces(p, 0, 10, 4, "test", func(b []byte, i, in int64) error {
		if i == 1 {
			return boom
		}
		return nil
	})
	require.ErrorIs(t, err, boom)
	require.Equal(t, 4, n, "the bytes read before the failing piece")
}

// Open returns a nil Image, not a typed nil, when the reader fails, and
// closes the file; WithFile always closes it.
func TestOpenClosesOnFailure(t *testing.T) {
	p := filepath.Join(t.TempDir(), "f")
	require.NoError(t, os.WriteFile(p, []byte("abc"), 0o644))
	var kept *os.File
	img, err := Open(p, func(f *os.File, size int64) (*RawFile, error) {
		require.Equal(t, int64(3), size)
		kept = f
		return nil, Errorf("test", "bad")
	})
	require.Error(t, err)
	require.Nil(t, img)
	require.ErrorIs(t, kept.Close(), os.ErrClosed)

	n, err := WithFile(p, func(f *os.File, size int64) (int64, error) { kept = f; return size, nil })
	require.NoError(t, err)
	require.Equal(t, int64(3), n)
	require.ErrorIs(t, kept.Close(), os.ErrClosed)

	img, err = Open(p, func(f *os.File, size int64) (*RawFile, error) { return &RawFile{f: f, size: size}, nil })
	require.NoError(t, err)
	require.NoError(t, img.Close(), "the image owns the open file")
	_, err = Open(filepath.Join(t.TempDir(), "missing"), func(f *os.File, size int64) (*RawFile, error) { return nil, nil })
	require.ErrorIs(t, err, os.ErrNotExist)
}

// LastPiece inflates a piece once while it is the last one read, and keeps
// nothing a failed load returned.
func TestLastPiece(t *testing.T) {
	var c LastPiece
	loads := 0
	load := func(s string) func() ([]byte, error) {
		return func() ([]byte, error) { loads++; return []byte(s), nil }
	}
	for range 3 {
		b, err := c.Get(0, load("zero"))
		require.NoError(t, err)
		require.Equal(t, "zero", string(b))
	}
	require.Equal(t, 1, loads)
	b, err := c.Get(7, load("seven"))
	require.NoError(t, err)
	require.Equal(t, "seven", string(b))
	_, err = c.Get(8, func() ([]byte, error) { return nil, errors.New("bad") })
	require.Error(t, err)
	b, err = c.Get(7, load("again"))
	require.NoError(t, err)
	require.Equal(t, "seven", string(b), "a failed load keeps the piece held")
	require.Equal(t, 2, loads)
}
