package formats

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

// Detect names the format of the file at path from its bytes: "qcow2",
// "vmdk", "vhdx", "vhd", "ova", "zstd", "xz" or "raw".
func Detect(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", err
	}
	head := make([]byte, 512)
	n, _ := io.ReadFull(f, head)
	head = head[:n]
	switch {
	case bytes.HasPrefix(head, []byte("QFI\xfb")):
		return "qcow2", nil
	case bytes.HasPrefix(head, []byte("KDMV")), bytes.HasPrefix(head, []byte("# Disk DescriptorFile")):
		return "vmdk", nil
	case bytes.HasPrefix(head, []byte("vhdxfile")):
		return "vhdx", nil
	case bytes.HasPrefix(head, []byte("conectix")):
		return "vhd", nil
	case bytes.HasPrefix(head, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		return "zstd", nil
	case bytes.HasPrefix(head, []byte{0xfd, '7', 'z', 'X', 'Z', 0}):
		return "xz", nil
	case len(head) >= 263 && bytes.Equal(head[257:262], []byte("ustar")):
		return "ova", nil
	}
	if fi.Size() >= 512 {
		foot := make([]byte, 8)
		if _, err := f.ReadAt(foot, fi.Size()-512); err == nil && bytes.Equal(foot, []byte("conectix")) {
			return "vhd", nil // a fixed VHD: raw data, then the footer
		}
	}
	return "raw", nil
}

// Open opens a disk image file of any supported format as a virtual disk.
// Compressed files and OVAs are not disks; see Decompress and OVADisk.
func Open(path string) (Image, error) {
	format, err := Detect(path)
	if err != nil {
		return nil, err
	}
	switch format {
	case "raw":
		return OpenRaw(path)
	case "qcow2":
		return OpenQCOW2(path)
	case "vmdk":
		return OpenVMDK(path)
	case "vhd":
		return OpenVHD(path)
	case "vhdx":
		return OpenVHDX(path)
	}
	return nil, fmt.Errorf("%s is a %s file, not a disk image; decompress or unpack it first", path, format)
}

// Decompress writes the decompressed content of a .zst or .xz file to dst,
// a new sparse file: zero blocks become holes.
func Decompress(ctx context.Context, path, dst string) error {
	format, err := Detect(path)
	if err != nil {
		return err
	}
	in, err := os.Open(path)
	if err != nil {
		return err
	}
	defer in.Close()
	var r io.Reader
	switch format {
	case "zstd":
		d, err := zstd.NewReader(in)
		if err != nil {
			return err
		}
		defer d.Close()
		r = d
	case "xz":
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
	defer out.Close()
	buf := make([]byte, 1<<20)
	var off int64
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		n, rerr := io.ReadFull(r, buf)
		if n > 0 && !isZero(buf[:n]) {
			if _, err := out.WriteAt(buf[:n], off); err != nil {
				return err
			}
		}
		off += int64(n)
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
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
