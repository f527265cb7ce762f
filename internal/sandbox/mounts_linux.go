package sandbox

import (
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// setupMounts prepares the tree's API filesystems inside the private mount
// namespace. Mount points must be real directories inside the tree: a base
// whose /proc is a symlink is refused rather than followed.
func setupMounts(root string) error {
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("making mounts private: %w", err)
	}
	type m struct {
		dir, fstype, src string
		flags            uintptr
		data             string
	}
	mounts := []m{
		{"proc", "proc", "proc", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, ""},
		{"sys", "sysfs", "sysfs", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC | unix.MS_RDONLY, ""},
		{"dev", "tmpfs", "tmpfs", unix.MS_NOSUID, "mode=0755,size=16m"},
		{"run", "tmpfs", "tmpfs", unix.MS_NOSUID | unix.MS_NODEV, "mode=0755"},
		{"tmp", "tmpfs", "tmpfs", unix.MS_NOSUID | unix.MS_NODEV, "mode=1777"},
	}
	for _, mt := range mounts {
		dir, err := mountPoint(root, mt.dir)
		if err != nil {
			return err
		}
		if err := unix.Mount(mt.src, dir, mt.fstype, mt.flags, mt.data); err != nil {
			return fmt.Errorf("mounting %s on %s: %w", mt.fstype, dir, err)
		}
	}
	dev := filepath.Join(root, "dev")
	nodes := []struct {
		name         string
		major, minor uint32
	}{{"null", 1, 3}, {"zero", 1, 5}, {"full", 1, 7}, {"random", 1, 8}, {"urandom", 1, 9}, {"tty", 5, 0}}
	for _, n := range nodes {
		if err := unix.Mknod(filepath.Join(dev, n.name), unix.S_IFCHR|0o666, int(unix.Mkdev(n.major, n.minor))); err != nil {
			return fmt.Errorf("creating /dev/%s: %w", n.name, err)
		}
		// The umask took bits off: apt's _apt user must write /dev/null.
		if err := unix.Chmod(filepath.Join(dev, n.name), 0o666); err != nil {
			return fmt.Errorf("chmod /dev/%s: %w", n.name, err)
		}
	}
	for _, d := range []string{"pts", "shm"} {
		if err := os.Mkdir(filepath.Join(dev, d), 0o755); err != nil {
			return err
		}
	}
	if err := unix.Mount("devpts", filepath.Join(dev, "pts"), "devpts", unix.MS_NOSUID|unix.MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620"); err != nil {
		return fmt.Errorf("mounting devpts: %w", err)
	}
	if err := unix.Mount("tmpfs", filepath.Join(dev, "shm"), "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=1777"); err != nil {
		return fmt.Errorf("mounting /dev/shm: %w", err)
	}
	links := map[string]string{"ptmx": "pts/ptmx", "fd": "/proc/self/fd", "stdin": "/proc/self/fd/0", "stdout": "/proc/self/fd/1", "stderr": "/proc/self/fd/2"}
	for name, target := range links {
		if err := os.Symlink(target, filepath.Join(dev, name)); err != nil {
			return err
		}
	}
	return nil
}

func mountPoint(root, name string) (string, error) {
	p := filepath.Join(root, name)
	fi, err := os.Lstat(p)
	if os.IsNotExist(err) {
		return p, os.Mkdir(p, 0o755)
	}
	if err != nil {
		return "", err
	}
	if !fi.IsDir() {
		return "", fmt.Errorf("/%s in the tree is not a directory (%s); refusing to mount over it", name, fi.Mode().Type())
	}
	return p, nil
}
