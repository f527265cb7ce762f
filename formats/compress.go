package formats

import (
	"context"
	"fmt"
	"io"
	"runtime"
	"sync"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"

	"github.com/kiln-build/kiln/formats/image"
)

// Compression algorithms for published files.
const (
	CompressZstd = "zstd"
	CompressXZ   = "xz"
	CompressNone = "none"
)

// CompressExt is the file extension an algorithm adds.
func CompressExt(algo string) string {
	switch algo {
	case CompressZstd:
		return ".zst"
	case CompressXZ:
		return ".xz"
	}
	return ""
}

// Chunk sizes: each chunk is compressed independently, on its own core, as
// a complete xz stream or zstd frame; concatenated in order they decode as
// one file with `xz -d` and `zstd -d`. Larger chunks compress a little
// better; smaller ones spread over more cores. 32 MiB keeps xz within about
// 1% of one stream and its memory at workers × (chunk + output) ≈ 130 MiB on
// 2 cores; zstd's default level uses an 8 MiB window, so 16 MiB frames cost
// next to nothing in ratio.
const (
	xzChunk   = 32 << 20
	zstdChunk = 16 << 20
)

// Compress copies src to dst compressed with algo, using workers goroutines
// (0 = runtime.NumCPU()). The output is deterministic: the same input gives
// the same bytes whatever the number of workers.
//
// The input is cut into chunks compressed in parallel (see xzChunk): ulikunitz/xz
// on one stream reaches only about 2 MB/s here, half of `xz -T0` on 2 cores.
// A disk image is mostly zeros, and every all-zero chunk of a given size
// compresses to the same bytes, so those are compressed once and reused.
func Compress(ctx context.Context, dst io.Writer, src io.Reader, algo string, workers int) error {
	if workers <= 0 {
		workers = runtime.NumCPU()
	}
	switch algo {
	case CompressZstd:
		return parallelChunks(ctx, dst, src, workers, zstdChunk, zstdFrame)
	case CompressXZ:
		return parallelChunks(ctx, dst, src, workers, xzChunk, xzStream)
	case CompressNone, "":
		_, err := io.Copy(dst, ctxReader{ctx, src})
		return err
	}
	return fmt.Errorf("unknown compression %q (use zstd, xz or none)", algo)
}

type chunkJob struct {
	in  []byte
	out chan []byte
	err chan error
}

// parallelChunks reads src in chunks of size chunk, compresses each with
// encode on one of workers goroutines, and writes the results in input
// order. An empty input is written as encode(nil), a valid empty file.
func parallelChunks(ctx context.Context, dst io.Writer, src io.Reader, workers, chunk int, encode func([]byte) ([]byte, error)) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	jobs := make(chan *chunkJob)
	order := make(chan *chunkJob, workers)
	var zeros sync.Map // chunk length -> encoded all-zero chunk
	for i := 0; i < workers; i++ {
		go func() {
			for j := range jobs {
				zero := image.IsZero(j.in)
				if zero {
					if out, ok := zeros.Load(len(j.in)); ok {
						j.out <- out.([]byte)
						continue
					}
				}
				out, err := encode(j.in)
				if err != nil {
					j.err <- err
					continue
				}
				if zero {
					zeros.Store(len(j.in), out)
				}
				j.out <- out
			}
		}()
	}
	readErr := make(chan error, 1)
	go func() {
		defer close(order)
		defer close(jobs)
		for {
			buf := make([]byte, chunk)
			n, err := io.ReadFull(src, buf)
			if n > 0 {
				j := &chunkJob{in: buf[:n], out: make(chan []byte, 1), err: make(chan error, 1)}
				select {
				case order <- j:
				case <-ctx.Done():
					readErr <- ctx.Err()
					return
				}
				select {
				case jobs <- j:
				case <-ctx.Done():
					readErr <- ctx.Err()
					return
				}
			}
			if err == io.EOF || err == io.ErrUnexpectedEOF {
				readErr <- nil
				return
			}
			if err != nil {
				readErr <- err
				return
			}
		}
	}()
	wrote := false
	for j := range order {
		select {
		case out := <-j.out:
			if _, err := dst.Write(out); err != nil {
				return err
			}
			wrote = true
		case err := <-j.err:
			return err
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if err := <-readErr; err != nil {
		return err
	}
	if !wrote {
		out, err := encode(nil)
		if err != nil {
			return err
		}
		_, err = dst.Write(out)
		return err
	}
	return nil
}

// zstdEncoder is a single-threaded encoder shared by the workers:
// EncodeAll is safe for concurrent use.
var zstdEncoder = sync.OnceValues(func() (*zstd.Encoder, error) {
	return zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedDefault), zstd.WithEncoderConcurrency(runtime.NumCPU()))
})

func zstdFrame(in []byte) ([]byte, error) {
	enc, err := zstdEncoder()
	if err != nil {
		return nil, err
	}
	return enc.EncodeAll(in, make([]byte, 0, len(in)/4+64)), nil
}

func xzStream(in []byte) ([]byte, error) {
	var b bytesBuffer
	w, err := xz.NewWriter(&b)
	if err != nil {
		return nil, err
	}
	if _, err := w.Write(in); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return b.buf, nil
}

type bytesBuffer struct{ buf []byte }

func (b *bytesBuffer) Write(p []byte) (int, error) { b.buf = append(b.buf, p...); return len(p), nil }

// ctxReader stops a copy when ctx is cancelled.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
