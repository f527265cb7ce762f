// Package infile opens the files Kiln reads as input (disk images,
// compressed images, OVAs, base files) so that an input that is not a file
// gets a clear error at once instead of a hang: a FIFO is opened without
// blocking and refused, and so are directories, character devices (such
// as /dev/zero, which never ends) and sockets. Regular files and block
// devices are read.
package infile

import (
	"fmt"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// Open opens path for reading and returns it with its size.
func Open(path string) (*os.File, int64, error) {
	// O_NONBLOCK: opening a FIFO for reading would otherwise wait for a
	// writer, forever.
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, 0, err
	}
	size, err := check(f)
	if err != nil {
		f.Close()
		return nil, 0, fmt.Errorf("%s: %w", path, err)
	}
	return f, size, nil
}

func check(f *os.File) (int64, error) {
	fi, err := f.Stat()
	if err != nil {
		return 0, err
	}
	m := fi.Mode()
	switch {
	case m.IsRegular():
	case m&os.ModeDevice != 0 && m&os.ModeCharDevice == 0:
		return 0, fmt.Errorf("is a block device, not an image file: copy it into one first (dd if=DEVICE of=disk.raw conv=sparse)")
	case m.IsDir():
		return 0, fmt.Errorf("is a directory, not an image file")
	case m&os.ModeNamedPipe != 0:
		return 0, fmt.Errorf("is a named pipe (FIFO), not an image file: Kiln reads images at offsets, which a pipe cannot give; save the stream to a file first")
	case m&os.ModeCharDevice != 0:
		return 0, fmt.Errorf("is a character device, not an image file")
	case m&os.ModeSocket != 0:
		return 0, fmt.Errorf("is a socket, not an image file")
	default:
		return 0, fmt.Errorf("is not a regular file (%s)", m.Type())
	}
	return fi.Size(), clearNonblock(f)
}

// clearNonblock puts the descriptor back in blocking mode (it makes no
// difference to files, but reads should not see EAGAIN anywhere).
func clearNonblock(f *os.File) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) { serr = unix.SetNonblock(int(fd), false) }); err != nil {
		return err
	}
	return serr
}
