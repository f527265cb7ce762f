package formats

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"

	"github.com/kiln-build/kiln/formats/image"
	"github.com/kiln-build/kiln/internal/infile"
)

// Detect names the format of the file at path from its bytes: a Format's
// name ("qcow2", "vmdk", "vhdx", "vhd", "ova", or "raw" when nothing else
// matches) or a compression ("zstd", "xz").
func Detect(path string) (string, error) {
	return image.WithFile(path, func(f *os.File, size int64) (string, error) {
		head := make([]byte, 512)
		n, err := io.ReadFull(f, head)
		if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
			return "", err // a short file is fine; a failed read is not raw
		}
		head = head[:n]
		switch {
		case bytes.HasPrefix(head, []byte{0x28, 0xb5, 0x2f, 0xfd}):
			return CompressZstd, nil
		case bytes.HasPrefix(head, []byte{0xfd, '7', 'z', 'X', 'Z', 0}):
			return CompressXZ, nil
		}
		for _, ft := range registry {
			if ft.magic != nil && ft.magic(head, nil) {
				return ft.Name, nil
			}
		}
		if size >= 512 {
			tail := make([]byte, 512)
			if err := image.ReadFull(f, tail, size-512, "disk image", "last sector"); err != nil {
				return "", err
			}
			for _, ft := range registry {
				if ft.magic != nil && ft.magic(nil, tail) {
					return ft.Name, nil
				}
			}
		}
		return "raw", nil
	})
}

// Open opens a disk image file of any supported format as a virtual disk.
// Compressed files and OVAs are not disks; see Decompress.
func Open(path string) (image.Image, error) {
	format, err := Detect(path)
	if err != nil {
		return nil, err
	}
	if ft, err := Lookup(format); err == nil && ft.Open != nil {
		return ft.Open(path)
	}
	return nil, fmt.Errorf("%s is a %s file, not a disk image; decompress or unpack it first", path, format)
}

// fill reads into buf until it is full or r ends (io.EOF, possibly with
// data). Unlike io.ReadFull it keeps the decoder's own errors, such as the
// io.ErrUnexpectedEOF of a truncated stream, apart from a clean end.
func fill(r io.Reader, buf []byte) (int, error) {
	n := 0
	for n < len(buf) {
		m, err := r.Read(buf[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// Decompress writes the decompressed content of a .zst or .xz file to dst,
// a new sparse file: zero blocks become holes.
//
// A hostile input costs bounded memory and a clear error: the zstd window
// and the xz dictionaries (what the decoders allocate) are checked before
// decoding (decompress_limits.go), and the output stops at
// image.MaxVirtualSize. A failed decompression removes dst.
func Decompress(ctx context.Context, path, dst string) (err error) {
	format, err := Detect(path)
	if err != nil {
		return err
	}
	in, size, err := infile.Open(path)
	if err != nil {
		return err
	}
	defer in.Close()
	var r io.Reader
	switch format {
	case "zstd":
		if err := checkZstd(in); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		d, err := zstd.NewReader(in, zstdOptions()...)
		if err != nil {
			return err
		}
		defer d.Close()
		r = d
	case "xz":
		if err := checkXZ(in, size); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		x, err := xz.NewReader(in)
		if err != nil {
			return err
		}
		r = x
	default:
		return fmt.Errorf("%s is not compressed (%s)", path, format)
	}
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	defer func() {
		out.Close()
		if err != nil {
			os.Remove(dst)
		}
	}()
	buf := make([]byte, 1<<20)
	var off int64
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		n, rerr := fill(r, buf)
		if n > 0 && off+int64(n) > decompressLimit {
			return fmt.Errorf("decompressing %s: it holds more than %d bytes, Kiln's limit for a disk (64 TiB)", path, decompressLimit)
		}
		if n > 0 && !image.IsZero(buf[:n]) {
			if _, err := out.WriteAt(buf[:n], off); err != nil {
				return err
			}
		}
		off += int64(n)
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return fmt.Errorf("decompressing %s: %w", path, rerr)
		}
	}
	if err := out.Truncate(off); err != nil {
		return err
	}
	return out.Sync()
}
