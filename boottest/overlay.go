package boottest

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/kiln-build/kiln/formats"
	kimage "github.com/kiln-build/kiln/formats/image"
	"github.com/kiln-build/kiln/formats/qcow2"
	"github.com/kiln-build/kiln/internal/sparse"
)

// qemuFormat is QEMU's driver name for a format Kiln detects.
func qemuFormat(format string) string {
	if format == "vhd" {
		return "vpc"
	}
	return format
}

// prepareBootDisk returns the disk QEMU boots for a test of image, with the
// harness injected by inject (which writes into a raw file at the root
// partition's offset).
//
// A raw image is copied sparsely and the harness is injected into the copy.
// Any other format is booted as itself: its virtual disk is written to a
// scratch raw file, the harness is injected there, and the clusters that
// changed go into a qcow2 overlay whose backing file is the image. QEMU then
// reads everything else through its own driver for that format, so the test
// proves the file boots. A cluster the harness turned all-zero would read
// from the backing file; debugfs only adds files, so none does.
func prepareBootDisk(ctx context.Context, image, work string, growBy uint64, inject func(raw string) error) (path, format string, err error) {
	kind, err := formats.Detect(image)
	if err != nil {
		return "", "", err
	}
	if kind == "raw" {
		copyPath := filepath.Join(work, "test.raw")
		if err := sparse.Copy(copyPath, image); err != nil {
			return "", "", fmt.Errorf("copying the image for testing: %w", err)
		}
		if growBy > 0 {
			fi, err := os.Stat(copyPath)
			if err != nil {
				return "", "", err
			}
			if err := os.Truncate(copyPath, fi.Size()+int64(growBy)); err != nil {
				return "", "", err
			}
		}
		return copyPath, "raw", inject(copyPath)
	}
	if growBy > 0 {
		return "", "", fmt.Errorf("growing the disk is only supported when testing raw images")
	}
	base, err := formats.Open(image)
	if err != nil {
		return "", "", err
	}
	defer base.Close()
	scratch := filepath.Join(work, "scratch.raw")
	f, err := os.Create(scratch)
	if err != nil {
		return "", "", err
	}
	if err := f.Truncate(base.Size()); err == nil {
		err = kimage.ForEachBlock(base, 1<<20, func(off int64, data []byte) error {
			_, err := f.WriteAt(data, off)
			return err
		})
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", "", fmt.Errorf("reading %s: %w", image, err)
	}
	defer os.Remove(scratch)
	if err := inject(scratch); err != nil {
		return "", "", err
	}
	changed, err := diffSource(scratch, base)
	if err != nil {
		return "", "", err
	}
	defer changed.Close()
	abs, err := filepath.Abs(image)
	if err != nil {
		return "", "", err
	}
	overlay := filepath.Join(work, "overlay.qcow2")
	o, err := os.Create(overlay)
	if err != nil {
		return "", "", err
	}
	defer o.Close()
	if err := qcow2.Write(ctx, o, changed, kimage.Options{BackingFile: abs, BackingFormat: qemuFormat(kind)}); err != nil {
		return "", "", fmt.Errorf("writing the test overlay: %w", err)
	}
	return overlay, "qcow2", o.Sync()
}

const diffCluster = 64 << 10

// changedClusters is a Source holding only the clusters of scratch that
// differ from base.
type changedClusters struct {
	*kimage.RawFile
	exts []sparse.Extent
}

func (c *changedClusters) Extents() ([]sparse.Extent, error) { return c.exts, nil }

func diffSource(scratch string, base kimage.Image) (*changedClusters, error) {
	raw, err := kimage.OpenRaw(scratch)
	if err != nil {
		return nil, err
	}
	c := &changedClusters{RawFile: raw}
	a, b := make([]byte, diffCluster), make([]byte, diffCluster)
	err = kimage.ForEachBlock(raw, diffCluster, func(off int64, data []byte) error {
		n := len(data)
		copy(a, data)
		if _, err := base.ReadAt(b[:n], off); err != nil {
			return err
		}
		if !bytes.Equal(a[:n], b[:n]) {
			if k := len(c.exts); k > 0 && c.exts[k-1].Off+c.exts[k-1].Len == off {
				c.exts[k-1].Len += int64(n)
			} else {
				c.exts = append(c.exts, sparse.Extent{Off: off, Len: int64(n)})
			}
		}
		return nil
	})
	if err != nil {
		raw.Close()
		return nil, err
	}
	return c, nil
}
