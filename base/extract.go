package base

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/kiln-build/kiln/internal/fsroot"
	"github.com/kiln-build/kiln/internal/run"
)

// ExtractExt4 copies the tree of the ext2/3/4 filesystem at byte offset off
// of the raw disk image img into dest (a directory, created if missing),
// with no mount: e2fsprogs' debugfs dumps it ("rdump"), then what rdump
// loses is put back from debugfs's own listing of every inode.
//
// The filesystem is untrusted. It must first pass `e2fsck -fn` (no
// duplicate names, no directory loops, no names with "/"), so that rdump,
// which creates each entry once below dest, never meets an entry whose
// path goes through a symlink it created. Every fix-up afterwards resolves
// paths inside dest (internal/fsroot) and never follows a symlink's last
// component.
//
// rdump keeps contents, owners, permission bits and mtimes of files,
// directories and symlinks. Put back: setuid, setgid and sticky bits
// (rdump drops them), symlink owners, hard links (rdump writes each name as
// its own copy), device nodes below /dev and FIFOs (rdump skips them; device
// nodes elsewhere are left out on purpose), and the
// security.capability extended attribute of executables (file
// capabilities, such as ping's). Not carried over: other extended
// attributes (ACLs, SELinux labels), sockets, and atimes/ctimes.
func ExtractExt4(ctx context.Context, img string, off uint64, dest string, log io.Writer) error {
	dev := img
	if off > 0 {
		dev = fmt.Sprintf("%s?offset=%d", img, off)
	}
	if err := run.Run(ctx, run.Cmd{Args: []string{"e2fsck", "-fn", dev}, Log: log}); err != nil {
		return fmt.Errorf("the ext4 filesystem at offset %d is not clean (a disk must be imported from a cleanly shut down or unmounted image): %w", off, err)
	}
	entries, err := listExt4(ctx, dev)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dest, 0o755); err != nil {
		return err
	}
	dest, err = filepath.Abs(dest)
	if err != nil {
		return err
	}
	var stderr bytes.Buffer
	if err := run.Run(ctx, run.Cmd{Args: []string{"debugfs", "-R", "rdump / " + dest, dev}, Stderr: &stderr, Log: log}); err != nil {
		return err
	}
	if msg := debugfsErrors(stderr.String()); msg != "" {
		return fmt.Errorf("debugfs rdump of the filesystem at offset %d: %s", off, msg)
	}
	return fixup(ctx, dev, dest, entries, log)
}

// debugfsErrors returns debugfs's stderr without its version banner.
func debugfsErrors(s string) string {
	var keep []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "debugfs ") {
			keep = append(keep, l)
		}
	}
	return strings.Join(keep, "; ")
}

// ext4Entry is one directory entry of a listing.
type ext4Entry struct {
	Path     string // absolute inside the filesystem
	Ino      uint64
	Mode     uint32 // st_mode: type and permission bits
	UID, GID int
}

// lsLine is one entry of `debugfs ls -p`: /inode/mode/uid/gid/name/size/.
var lsLine = regexp.MustCompile(`^/(\d+)/([0-7]{6})/(\d+)/(\d+)/([^/]*)/([^/]*)/$`)

// listExt4 lists every entry of the filesystem, breadth first: one debugfs
// run per directory depth. The root directory itself is the entry "/".
func listExt4(ctx context.Context, dev string) ([]ext4Entry, error) {
	var all []ext4Entry
	level := []string{"/"}
	for depth := 0; len(level) > 0; depth++ {
		if depth > 4096 {
			return nil, errors.New("the filesystem's directories nest too deep")
		}
		var cmds strings.Builder
		for _, d := range level {
			fmt.Fprintf(&cmds, "ls -p %s\n", debugfsQuote(d))
		}
		out, err := debugfsScript(ctx, dev, cmds.String())
		if err != nil {
			return nil, err
		}
		entries, next, err := parseListing(out, level)
		if err != nil {
			return nil, err
		}
		all = append(all, entries...)
		level = next
	}
	return all, nil
}

// parseListing reads debugfs's output for one "ls -p DIR" command per
// directory of level, in order: the entries, and the directories among
// them (the next level). The output is untrusted (names come from the
// image): anything it cannot read unambiguously is an error.
func parseListing(out []byte, level []string) (entries []ext4Entry, next []string, err error) {
	dir := ""
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	i := -1
	for sc.Scan() {
		l := sc.Text()
		if strings.HasPrefix(l, "debugfs: ls -p ") {
			i++
			if i >= len(level) {
				return nil, nil, errors.New("unexpected debugfs listing")
			}
			dir = level[i]
			continue
		}
		if l == "" || dir == "" {
			continue
		}
		m := lsLine.FindStringSubmatch(l)
		if m == nil {
			return nil, nil, fmt.Errorf("cannot read debugfs's listing of %s: %q (a file name with a newline?)", dir, l)
		}
		name := m[5]
		if name == ".." || (name == "." && dir != "/") || name == "" {
			continue // "": an unused directory slot (lost+found has many)
		}
		e := ext4Entry{Path: path.Join(dir, name)}
		e.Ino, _ = strconv.ParseUint(m[1], 10, 64)
		mode, _ := strconv.ParseUint(m[2], 8, 32)
		e.Mode = uint32(mode)
		e.UID, _ = strconv.Atoi(m[3])
		e.GID, _ = strconv.Atoi(m[4])
		entries = append(entries, e)
		if name != "." && e.Mode&unix.S_IFMT == unix.S_IFDIR {
			next = append(next, e.Path)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, nil, fmt.Errorf("reading debugfs's listing: %w", err)
	}
	if i != len(level)-1 {
		return nil, nil, fmt.Errorf("debugfs listed %d of %d directories", i+1, len(level))
	}
	return entries, next, nil
}

// debugfsQuote quotes a path for a debugfs command line.
func debugfsQuote(p string) string {
	return `"` + strings.ReplaceAll(strings.ReplaceAll(p, `\`, `\\`), `"`, `\"`) + `"`
}

// debugfsEach runs `cmd PATH` for each entry in one debugfs and returns
// what each printed, in order.
func debugfsEach(ctx context.Context, dev, cmd string, entries []ext4Entry) ([]string, error) {
	var cmds strings.Builder
	for _, e := range entries {
		fmt.Fprintf(&cmds, "%s %s\n", cmd, debugfsQuote(e.Path))
	}
	out, err := debugfsScript(ctx, dev, cmds.String())
	if err != nil {
		return nil, err
	}
	// One "debugfs: CMD" section per entry.
	sections := strings.Split(string(out), "debugfs: "+cmd+" ")[1:]
	if len(sections) != len(entries) {
		return nil, fmt.Errorf("debugfs %s returned %d of %d entries", cmd, len(sections), len(entries))
	}
	return sections, nil
}

// debugfsScript runs debugfs -f - with cmds on stdin and returns stdout.
func debugfsScript(ctx context.Context, dev, cmds string) ([]byte, error) {
	return run.Output(ctx, run.Cmd{Args: []string{"debugfs", "-f", "-", dev}, Stdin: strings.NewReader(cmds)})
}

// fixup puts back what rdump loses (see ExtractExt4).
func fixup(ctx context.Context, dev, dest string, entries []ext4Entry, log io.Writer) error {
	firstPath := map[uint64]string{}
	var devices, execs []ext4Entry
	for _, e := range entries {
		host, err := inTree(dest, e.Path)
		if err != nil {
			return err
		}
		typ := e.Mode & unix.S_IFMT
		perm := e.Mode & 0o7777
		switch typ {
		case unix.S_IFREG:
			if first, ok := firstPath[e.Ino]; ok {
				firstHost, err := inTree(dest, first)
				if err != nil {
					return err
				}
				if err := os.Remove(host); err != nil && !errors.Is(err, fs.ErrNotExist) {
					return err
				}
				if err := os.Link(firstHost, host); err != nil {
					return fmt.Errorf("restoring hard link %s: %w", e.Path, err)
				}
				continue
			}
			firstPath[e.Ino] = e.Path
			if perm&0o111 != 0 {
				execs = append(execs, e)
			}
		case unix.S_IFCHR, unix.S_IFBLK:
			// Device nodes only where a system keeps them: a node elsewhere
			// in an untrusted image would give build steps a way to the
			// host's devices that the sandbox's fresh /dev does not hide.
			if strings.HasPrefix(e.Path, "/dev/") {
				devices = append(devices, e)
			} else if log != nil {
				fmt.Fprintf(log, "base: not recreating device node %s (outside /dev)\n", e.Path)
			}
			continue
		case unix.S_IFIFO:
			devices = append(devices, e)
			continue
		case unix.S_IFSOCK:
			continue
		}
		fi, err := os.Lstat(host)
		if err != nil {
			return fmt.Errorf("after rdump: %w", err)
		}
		if err := os.Lchown(host, e.UID, e.GID); err != nil {
			return err
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			// After chown, which clears setuid and setgid.
			if err := unix.Fchmodat(unix.AT_FDCWD, host, perm, 0); err != nil {
				return fmt.Errorf("chmod %s: %w", e.Path, err)
			}
		}
	}
	if err := makeNodes(ctx, dev, dest, devices); err != nil {
		return err
	}
	return restoreCaps(ctx, dev, dest, execs)
}

// inTree returns the host path of p inside root with its parent resolved
// inside root and its last component not followed.
func inTree(root, p string) (string, error) {
	p = path.Clean("/" + p)
	if p == "/" {
		return root, nil
	}
	dir, err := fsroot.Resolve(root, path.Dir(p))
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, path.Base(p)), nil
}

var devLine = regexp.MustCompile(`Device major/minor number: ([0-9a-fA-F]+):([0-9a-fA-F]+) \(hex ([0-9a-fA-F]+):([0-9a-fA-F]+)\)`)

// makeNodes creates the device nodes and FIFOs rdump skipped.
func makeNodes(ctx context.Context, dev, dest string, nodes []ext4Entry) error {
	if len(nodes) == 0 {
		return nil
	}
	sections, err := debugfsEach(ctx, dev, "stat", nodes)
	if err != nil {
		return err
	}
	for i, n := range nodes {
		var rdev uint64
		if n.Mode&unix.S_IFMT != unix.S_IFIFO {
			m := devLine.FindStringSubmatch(sections[i])
			if m == nil {
				return fmt.Errorf("no device number for %s in debugfs stat", n.Path)
			}
			major, _ := strconv.ParseUint(m[3], 16, 32)
			minor, _ := strconv.ParseUint(m[4], 16, 32)
			rdev = unix.Mkdev(uint32(major), uint32(minor))
		}
		host, err := inTree(dest, n.Path)
		if err != nil {
			return err
		}
		_ = os.Remove(host)
		if err := unix.Mknod(host, n.Mode, int(rdev)); err != nil {
			return fmt.Errorf("mknod %s: %w", n.Path, err)
		}
		if err := os.Lchown(host, n.UID, n.GID); err != nil {
			return err
		}
		if err := unix.Fchmodat(unix.AT_FDCWD, host, n.Mode&0o7777, 0); err != nil {
			return err
		}
	}
	return nil
}

// eaLine is one attribute of `debugfs ea_list` printed as hex bytes.
var eaLine = regexp.MustCompile(`^\s+security\.capability \((\d+)\) = ((?:[0-9a-f]{2} )*[0-9a-f]{2}) ?$`)

// restoreCaps puts back the file capabilities (security.capability) of
// executables.
func restoreCaps(ctx context.Context, dev, dest string, execs []ext4Entry) error {
	if len(execs) == 0 {
		return nil
	}
	sections, err := debugfsEach(ctx, dev, "ea_list", execs)
	if err != nil {
		return err
	}
	for i, e := range execs {
		for _, l := range strings.Split(sections[i], "\n") {
			m := eaLine.FindStringSubmatch(l)
			if m == nil {
				continue
			}
			val, err := hex.DecodeString(strings.ReplaceAll(m[2], " ", ""))
			if err != nil || strconv.Itoa(len(val)) != m[1] {
				return fmt.Errorf("cannot read the capabilities of %s from debugfs", e.Path)
			}
			host, err := inTree(dest, e.Path)
			if err != nil {
				return err
			}
			if err := unix.Lsetxattr(host, "security.capability", val, 0); err != nil {
				return fmt.Errorf("restoring the capabilities of %s: %w", e.Path, err)
			}
		}
	}
	return nil
}
