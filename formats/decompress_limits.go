package formats

// Limits on compressed inputs, checked before anything is decompressed, so
// that a hostile .zst or .xz file costs a clear error and bounded memory:
// the decompressor's window (or dictionary) is what it allocates, and the
// uncompressed size is what it would write.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"

	"github.com/klauspost/compress/zstd"

	"github.com/kiln-build/kiln/formats/image"
)

const (
	// maxZstdWindow is zstd's own default limit for decompression
	// (--long=27): Kiln writes 8 MiB windows.
	maxZstdWindow = 128 << 20
	// maxXZDict is the dictionary of xz -9: Kiln writes 8 MiB.
	maxXZDict = 64 << 20
)

// decompressLimit bounds what Decompress writes: image.MaxVirtualSize
// (tests lower it).
var decompressLimit int64 = image.MaxVirtualSize

// zstdOptions bound the decoder: no window beyond maxZstdWindow, one
// goroutine.
func zstdOptions() []zstd.DOption {
	return []zstd.DOption{zstd.WithDecoderMaxWindow(maxZstdWindow), zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true)}
}

// checkZstd reads the first frame's header: its window and, when it says,
// its content size.
func checkZstd(r io.ReaderAt) error {
	buf := make([]byte, zstd.HeaderMaxSize)
	n, err := r.ReadAt(buf, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	var h zstd.Header
	if err := h.Decode(buf[:n]); err != nil {
		return fmt.Errorf("zstd: %w", err)
	}
	if h.WindowSize > maxZstdWindow {
		return fmt.Errorf("zstd: the frame's window of %d bytes is beyond Kiln's limit of %d (zstd's own default; Kiln writes 8 MiB)", h.WindowSize, maxZstdWindow)
	}
	if h.HasFCS && h.FrameContentSize > uint64(decompressLimit) {
		return fmt.Errorf("zstd: the frame says it holds %d bytes, beyond Kiln's limit of %d (64 TiB)", h.FrameContentSize, decompressLimit)
	}
	return nil
}

// checkXZ walks an xz file's streams from the end through their indexes,
// without decompressing anything: every block's LZMA2 dictionary must be
// at most maxXZDict (the decoder allocates it whole), and the uncompressed
// total at most decompressLimit. A file whose structure does not add up
// is refused.
func checkXZ(r io.ReaderAt, size int64) error {
	var total uint64
	end := size
	for streams := 0; end > 0; streams++ {
		// Stream padding: zero bytes, in multiples of four.
		var w [4]byte
		for end >= 4 {
			if _, err := r.ReadAt(w[:], end-4); err != nil {
				return err
			}
			if w != [4]byte{} {
				break
			}
			end -= 4
		}
		if end == 0 && streams > 0 {
			break
		}
		start, n, err := xzCheckStream(r, end)
		if err != nil {
			return fmt.Errorf("xz: stream %d from the end: %w", streams+1, err)
		}
		if total += n; total > uint64(decompressLimit) {
			return fmt.Errorf("xz: the file's index says it holds more than %d bytes, Kiln's limit (64 TiB)", decompressLimit)
		}
		end = start
	}
	return nil
}

var errXZ = errors.New("not a well-formed xz file")

// xzCheckStream checks the stream that ends at end and returns where it starts
// and its uncompressed size.
func xzCheckStream(r io.ReaderAt, end int64) (int64, uint64, error) {
	if end < 32 {
		return 0, 0, errXZ
	}
	foot := make([]byte, 12)
	if _, err := r.ReadAt(foot, end-12); err != nil {
		return 0, 0, err
	}
	if string(foot[10:]) != "YZ" || crc32.ChecksumIEEE(foot[4:10]) != binary.LittleEndian.Uint32(foot) {
		return 0, 0, fmt.Errorf("%w (no stream footer)", errXZ)
	}
	indexSize := (int64(binary.LittleEndian.Uint32(foot[4:])) + 1) * 4
	indexStart := end - 12 - indexSize
	if indexSize > 1<<30 || indexStart < 12 {
		return 0, 0, fmt.Errorf("%w (index of %d bytes)", errXZ, indexSize)
	}
	index := make([]byte, indexSize)
	if _, err := r.ReadAt(index, indexStart); err != nil {
		return 0, 0, err
	}
	if index[0] != 0 {
		return 0, 0, fmt.Errorf("%w (no index)", errXZ)
	}
	vli := func(b []byte) (uint64, []byte, error) {
		var v uint64
		for i := 0; i < len(b) && i < 9; i++ {
			v |= uint64(b[i]&0x7f) << (7 * i)
			if b[i]&0x80 == 0 {
				return v, b[i+1:], nil
			}
		}
		return 0, nil, fmt.Errorf("%w (bad number in the index)", errXZ)
	}
	count, rest, err := vli(index[1:])
	if err != nil {
		return 0, 0, err
	}
	if count > uint64(len(rest))/2 {
		return 0, 0, fmt.Errorf("%w (index of %d records in %d bytes)", errXZ, count, len(rest))
	}
	type block struct{ unpadded, size uint64 }
	blocks := make([]block, 0, count)
	var blocksSize, total uint64
	for range count {
		var b block
		if b.unpadded, rest, err = vli(rest); err != nil {
			return 0, 0, err
		}
		if b.size, rest, err = vli(rest); err != nil {
			return 0, 0, err
		}
		padded := (b.unpadded + 3) &^ 3
		if b.unpadded < 5 || padded > uint64(indexStart) || blocksSize+padded > uint64(indexStart) {
			return 0, 0, fmt.Errorf("%w (a block larger than the file)", errXZ)
		}
		blocksSize += padded
		if total += b.size; total > uint64(decompressLimit) {
			return 0, 0, fmt.Errorf("the index says the stream holds more than %d bytes, Kiln's limit (64 TiB)", decompressLimit)
		}
		blocks = append(blocks, b)
	}
	start := indexStart - int64(blocksSize) - 12
	if start < 0 {
		return 0, 0, fmt.Errorf("%w (blocks before the start of the file)", errXZ)
	}
	head := make([]byte, 12)
	if _, err := r.ReadAt(head, start); err != nil {
		return 0, 0, err
	}
	if string(head[:6]) != "\xfd7zXZ\x00" {
		return 0, 0, fmt.Errorf("%w (no stream header where the index says)", errXZ)
	}
	off := start + 12
	hdr := make([]byte, 1024)
	for i, b := range blocks {
		if _, err := r.ReadAt(hdr[:1], off); err != nil {
			return 0, 0, err
		}
		n := (int(hdr[0]) + 1) * 4
		if hdr[0] == 0 || uint64(n) > b.unpadded {
			return 0, 0, fmt.Errorf("%w (block %d has no header)", errXZ, i+1)
		}
		if _, err := r.ReadAt(hdr[:n], off); err != nil {
			return 0, 0, err
		}
		if err := xzBlockDict(hdr[:n]); err != nil {
			return 0, 0, fmt.Errorf("block %d: %w", i+1, err)
		}
		off += int64((b.unpadded + 3) &^ 3)
	}
	return start, total, nil
}

// xzBlockDict checks the LZMA2 dictionary of one block header.
func xzBlockDict(h []byte) error {
	flags := h[1]
	p := h[2 : len(h)-4] // after size and flags, before the CRC32
	skip := func() error {
		for i := range p {
			if p[i]&0x80 == 0 {
				p = p[i+1:]
				return nil
			}
		}
		return errXZ
	}
	if flags&0x40 != 0 {
		if err := skip(); err != nil {
			return err
		}
	}
	if flags&0x80 != 0 {
		if err := skip(); err != nil {
			return err
		}
	}
	for range int(flags&3) + 1 {
		if len(p) < 2 {
			return errXZ
		}
		id, propsLen := p[0], int(p[1])
		if p[0]&0x80 != 0 || p[1]&0x80 != 0 || len(p) < 2+propsLen {
			return errXZ
		}
		if id == 0x21 { // LZMA2
			if propsLen != 1 || p[2] > 40 {
				return errXZ
			}
			d := p[2]
			dict := uint64(2|d&1) << (d/2 + 11)
			if d == 40 {
				dict = 1<<32 - 1
			}
			if dict > maxXZDict {
				return fmt.Errorf("an LZMA2 dictionary of %d bytes is beyond Kiln's limit of %d (xz -9's; Kiln writes 8 MiB)", dict, maxXZDict)
			}
		}
		p = p[2+propsLen:]
	}
	return nil
}
