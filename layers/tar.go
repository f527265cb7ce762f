package layers

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// xattrPrefix is how PAX tars (GNU tar, bsdtar, Go) carry extended attributes.
const xattrPrefix = "SCHILY.xattr."

// writeLayer writes the entries changed, taken from the tree at root as
// after recorded them, to w as a PAX tar. Hard links among them are kept:
// since every link of an inode shares its ctime, all the names of a changed
// inode are in changed, and the first carries the data. Sockets cannot be
// archived and are skipped (none survives a step: /run is a private tmpfs).
func writeLayer(w io.Writer, root string, after *Snapshot, changed []string) (entries int, err error) {
	tw := tar.NewWriter(w)
	first := map[uint64]string{} // inode -> the first name written for it
	for _, rel := range changed {
		st := after.stats[rel]
		full := filepath.Join(root, rel)
		h := &tar.Header{Name: rel, Mode: int64(st.mode & 0o7777), Uid: int(st.uid), Gid: int(st.gid),
			ModTime: time.Unix(0, st.mtime), AccessTime: time.Unix(0, st.atime), Format: tar.FormatPAX}
		typ := st.mode & unix.S_IFMT
		if typ != unix.S_IFDIR && st.nlink > 1 {
			if target, ok := first[st.ino]; ok {
				h.Typeflag, h.Linkname = tar.TypeLink, target
				if err := tw.WriteHeader(h); err != nil {
					return entries, err
				}
				entries++
				continue
			}
			first[st.ino] = rel
		}
		switch typ {
		case unix.S_IFREG:
			h.Typeflag, h.Size = tar.TypeReg, st.size
		case unix.S_IFDIR:
			h.Typeflag = tar.TypeDir
		case unix.S_IFLNK:
			h.Typeflag = tar.TypeSymlink
			if h.Linkname, err = os.Readlink(full); err != nil {
				return entries, err
			}
		case unix.S_IFCHR, unix.S_IFBLK:
			h.Typeflag = tar.TypeChar
			if typ == unix.S_IFBLK {
				h.Typeflag = tar.TypeBlock
			}
			h.Devmajor, h.Devminor = int64(unix.Major(st.rdev)), int64(unix.Minor(st.rdev))
		case unix.S_IFIFO:
			h.Typeflag = tar.TypeFifo
		default:
			continue // a socket
		}
		xattrs, err := listXattrs(full)
		if err != nil {
			return entries, err
		}
		if len(xattrs) > 0 {
			h.PAXRecords = map[string]string{}
			for k, v := range xattrs {
				h.PAXRecords[xattrPrefix+k] = v
			}
		}
		if err := tw.WriteHeader(h); err != nil {
			return entries, fmt.Errorf("%s: %w", rel, err)
		}
		entries++
		if h.Typeflag == tar.TypeReg {
			if err := copyFile(tw, full, st.size); err != nil {
				return entries, fmt.Errorf("%s: %w", rel, err)
			}
		}
	}
	return entries, tw.Close()
}

func copyFile(w io.Writer, path string, size int64) error {
	f, err := os.OpenFile(path, os.O_RDONLY|unix.O_NOFOLLOW, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	n, err := io.Copy(w, io.LimitReader(f, size))
	if err == nil && n != size {
		err = fmt.Errorf("changed size while it was stored (%d bytes, expected %d)", n, size)
	}
	return err
}

// listXattrs returns an entry's extended attributes (not following a symlink).
func listXattrs(path string) (map[string]string, error) {
	names, err := xattrNames(path)
	if err != nil || len(names) == 0 {
		return nil, err
	}
	out := map[string]string{}
	for _, n := range names {
		size, err := unix.Lgetxattr(path, n, nil)
		if errors.Is(err, unix.ENODATA) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("reading xattr %s of %s: %w", n, path, err)
		}
		buf := make([]byte, size)
		size, err = unix.Lgetxattr(path, n, buf)
		if err != nil {
			return nil, fmt.Errorf("reading xattr %s of %s: %w", n, path, err)
		}
		out[n] = string(buf[:size])
	}
	return out, nil
}

func xattrNames(path string) ([]string, error) {
	size, err := unix.Llistxattr(path, nil)
	if errors.Is(err, unix.ENOTSUP) {
		return nil, nil
	}
	if err != nil || size == 0 {
		return nil, err
	}
	buf := make([]byte, size)
	size, err = unix.Llistxattr(path, buf)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, n := range strings.Split(string(buf[:size]), "\x00") {
		if n != "" {
			names = append(names, n)
		}
	}
	return names, nil
}

// applier writes a layer into a tree. Every path it touches must lie in the
// tree literally: a symlink on the way is an error, never followed, so a
// layer cannot write outside the tree whatever the tree holds.
type applier struct {
	root     string
	realDirs map[string]bool     // relative paths checked to be real directories
	dirTimes map[string][2]int64 // directories of the layer: atime, mtime to set last
	touched  map[string][2]int64 // other directories whose entries changed: their times before
	order    []string            // of dirTimes and touched, first seen first
}

func newApplier(root string) *applier {
	return &applier{root: root, realDirs: map[string]bool{".": true}, dirTimes: map[string][2]int64{}, touched: map[string][2]int64{}}
}

// applyLayer removes the deleted entries from the tree at root, then writes
// the tar's entries, then sets the times of the directories it touched.
func applyLayer(root string, r io.Reader, deleted []string) error {
	a := newApplier(root)
	for _, rel := range deleted {
		if err := a.checkName(rel); err != nil {
			return err
		}
		if err := a.touchParent(rel); err != nil {
			return err
		}
		if err := os.RemoveAll(filepath.Join(root, rel)); err != nil {
			return err
		}
		a.forget(rel)
	}
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		if err := a.entry(h, tr); err != nil {
			return fmt.Errorf("%s: %w", h.Name, err)
		}
	}
	return a.finish()
}

func (a *applier) checkName(rel string) error {
	if rel == "" || filepath.IsAbs(rel) || filepath.Clean(rel) != rel || rel == ".." || strings.HasPrefix(rel, "../") {
		return fmt.Errorf("layer holds an invalid path %q", rel)
	}
	return a.realDir(parent(rel))
}

// realDir checks that rel is a directory and that no component of it is a symlink.
func (a *applier) realDir(rel string) error {
	if a.realDirs[rel] {
		return nil
	}
	if err := a.realDir(parent(rel)); err != nil {
		return err
	}
	fi, err := os.Lstat(filepath.Join(a.root, rel))
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return fmt.Errorf("/%s is not a directory in the tree the layer is applied to (%s); the cache entry does not fit this tree", rel, fi.Mode().Type())
	}
	a.realDirs[rel] = true
	return nil
}

// forget drops what the applier knew about rel and everything under it,
// which was just removed.
func (a *applier) forget(rel string) {
	under := func(d string) bool { return d == rel || strings.HasPrefix(d, rel+"/") }
	for d := range a.realDirs {
		if under(d) {
			delete(a.realDirs, d)
		}
	}
	for d := range a.touched {
		if under(d) {
			delete(a.touched, d)
		}
	}
}

// touchParent records the times of rel's directory before the layer
// changes an entry in it, unless the layer sets them itself.
func (a *applier) touchParent(rel string) error {
	if rel == "." {
		return nil
	}
	dir := parent(rel)
	if _, ok := a.dirTimes[dir]; ok {
		return nil
	}
	if _, ok := a.touched[dir]; ok {
		return nil
	}
	var st unix.Stat_t
	if err := unix.Lstat(filepath.Join(a.root, dir), &st); err != nil {
		return err
	}
	a.touched[dir] = [2]int64{st.Atim.Nano(), st.Mtim.Nano()}
	a.order = append(a.order, dir)
	return nil
}

func (a *applier) entry(h *tar.Header, data io.Reader) error {
	rel := h.Name
	if rel != "." {
		if err := a.checkName(rel); err != nil {
			return err
		}
	}
	full := filepath.Join(a.root, rel)
	if err := a.touchParent(rel); err != nil {
		return err
	}
	existing, err := os.Lstat(full)
	switch {
	case err == nil && existing.IsDir() && h.Typeflag == tar.TypeDir:
		// kept: its entries are the lower layers'
	case err == nil:
		if rel == "." {
			return errors.New("the tree's root is not a directory")
		}
		if err := os.RemoveAll(full); err != nil {
			return err
		}
		a.forget(rel)
	case !errors.Is(err, os.ErrNotExist):
		return err
	}
	switch h.Typeflag {
	case tar.TypeDir:
		if existing == nil || !existing.IsDir() {
			if err := os.Mkdir(full, 0o700); err != nil {
				return err
			}
		}
		if _, seen := a.touched[rel]; !seen {
			a.order = append(a.order, rel)
		}
		delete(a.touched, rel)
		a.dirTimes[rel] = [2]int64{h.AccessTime.UnixNano(), h.ModTime.UnixNano()}
	case tar.TypeReg:
		f, err := os.OpenFile(full, os.O_WRONLY|os.O_CREATE|os.O_EXCL|unix.O_NOFOLLOW, 0o600)
		if err != nil {
			return err
		}
		err = writeSparse(f, data, h.Size)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
	case tar.TypeLink:
		if err := a.checkName(h.Linkname); err != nil {
			return err
		}
		if fi, err := os.Lstat(filepath.Join(a.root, h.Linkname)); err != nil || fi.IsDir() {
			return fmt.Errorf("hard link to %q, which is not a file of the layer", h.Linkname)
		}
		return os.Link(filepath.Join(a.root, h.Linkname), full) // the inode has its metadata already
	case tar.TypeSymlink:
		if err := os.Symlink(h.Linkname, full); err != nil {
			return err
		}
	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		mode := map[byte]uint32{tar.TypeChar: unix.S_IFCHR, tar.TypeBlock: unix.S_IFBLK, tar.TypeFifo: unix.S_IFIFO}[h.Typeflag]
		if err := unix.Mknod(full, mode|0o600, int(unix.Mkdev(uint32(h.Devmajor), uint32(h.Devminor)))); err != nil {
			return err
		}
	default:
		return fmt.Errorf("unexpected tar entry type %q", h.Typeflag)
	}
	return a.metadata(full, h)
}

// writeSparse copies size bytes of r into the new file f, leaving holes
// where whole blocks are zeros (a sparse /var/log/lastlog stays small).
func writeSparse(f *os.File, r io.Reader, size int64) error {
	buf := make([]byte, 64<<10)
	var off int64
	for off < size {
		n, err := io.ReadFull(r, buf[:min(int64(len(buf)), size-off)])
		if err != nil {
			return err
		}
		if len(bytes.TrimLeft(buf[:n], "\x00")) > 0 {
			if _, err := f.WriteAt(buf[:n], off); err != nil {
				return err
			}
		}
		off += int64(n)
	}
	return f.Truncate(size)
}

// metadata sets an entry's owner, extended attributes, mode and (for all
// but directories, which finish sets last) times, in that order: chown
// clears setuid bits and security.capability.
func (a *applier) metadata(full string, h *tar.Header) error {
	if err := os.Lchown(full, h.Uid, h.Gid); err != nil {
		return err
	}
	if err := setXattrs(full, h.PAXRecords); err != nil {
		return err
	}
	if h.Typeflag != tar.TypeSymlink {
		if err := unix.Fchmodat(unix.AT_FDCWD, full, uint32(h.Mode&0o7777), 0); err != nil {
			return fmt.Errorf("chmod: %w", err)
		}
	}
	if h.Typeflag == tar.TypeDir {
		return nil
	}
	return setTimes(full, h.AccessTime.UnixNano(), h.ModTime.UnixNano())
}

// setXattrs makes an entry's extended attributes exactly those of the
// records: inherited ones (a default ACL) and stale ones are removed.
func setXattrs(full string, records map[string]string) error {
	want := map[string]string{}
	for k, v := range records {
		if name, ok := strings.CutPrefix(k, xattrPrefix); ok {
			want[name] = v
		}
	}
	have, err := xattrNames(full)
	if err != nil {
		return err
	}
	for _, n := range have {
		if _, ok := want[n]; !ok {
			if err := unix.Lremovexattr(full, n); err != nil {
				return fmt.Errorf("removing xattr %s: %w", n, err)
			}
		}
	}
	for n, v := range want {
		if err := unix.Lsetxattr(full, n, []byte(v), 0); err != nil {
			return fmt.Errorf("setting xattr %s: %w", n, err)
		}
	}
	return nil
}

func setTimes(full string, atime, mtime int64) error {
	ts := []unix.Timespec{unix.NsecToTimespec(atime), unix.NsecToTimespec(mtime)}
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, full, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("setting times: %w", err)
	}
	return nil
}

// finish sets the times of the layer's directories, and puts back those of
// the other directories whose entries the layer changed.
func (a *applier) finish() error {
	for _, rel := range a.order {
		t, ok := a.dirTimes[rel]
		if !ok {
			if t, ok = a.touched[rel]; !ok {
				continue // removed after it was touched
			}
		}
		if err := setTimes(filepath.Join(a.root, rel), t[0], t[1]); err != nil {
			return fmt.Errorf("%s: %w", rel, err)
		}
	}
	return nil
}
