package fat32

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/require"
)

// memWriter records writes into a byte slice.
type memWriter struct {
	b      []byte
	writes int
}

func (m *memWriter) WriteAt(p []byte, off int64) (int, error) {
	if end := int(off) + len(p); end > len(m.b) {
		m.b = append(m.b, make([]byte, end-len(m.b))...)
	}
	m.writes++
	return copy(m.b[off:], p), nil
}

// TestWriteFilePadsWithZeros: the slack after a file's last byte is zero
// even when the copy buffer holds older content.
func TestWriteFilePadsWithZeros(t *testing.T) {
	buf := bytes.Repeat([]byte{0xFF}, copyBufSize)
	for _, n := range []int{1, 511, 512, 513, copyBufSize - 1, copyBufSize, copyBufSize + 700} {
		data := randomBytes(byte(n), n)
		w := &memWriter{}
		f := &item{path: "f", data: data, size: uint32(n)}
		require.NoError(t, writeFile(w, 1024, f, 4096, buf))
		padded := (n + 4095) / 4096 * 4096
		require.Len(t, w.b, 1024+padded, "n=%d", n)
		require.Equal(t, data, w.b[1024:1024+n])
		require.Equal(t, make([]byte, padded-n), w.b[1024+n:], "n=%d: slack", n)
	}
}
