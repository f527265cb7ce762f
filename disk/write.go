package disk

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/diskfs/go-diskfs/backend/file"
	"github.com/diskfs/go-diskfs/partition/gpt"
	"github.com/diskfs/go-diskfs/partition/mbr"
	"github.com/kiln-build/kiln/internal/fat32"
	"github.com/kiln-build/kiln/internal/fsroot"
	"github.com/kiln-build/kiln/internal/run"
	"github.com/kiln-build/kiln/platform"
)

// Mke2fsCmd is the mke2fs binary; tests may point it elsewhere.
var Mke2fsCmd = "mke2fs"

// File is one file for the ESP.
type File struct {
	Path     string // inside the ESP, slash-separated
	HostPath string // content from this host file...
	Data     []byte // ...or these bytes
}

// Content is what goes on the disk.
type Content struct {
	// Tree fills the root filesystem. Every other ext4 partition is filled
	// from Mounts[its mount point]: see SplitTree. Write never changes
	// these trees, so writing the same trees twice gives the same bytes.
	Tree       string
	Mounts     map[string]string
	ESP        []File
	SourceDate int64 // seconds since the epoch for filesystem timestamps; 0 = now
	Log        io.Writer
}

// Write creates path (which must not exist) as a sparse raw image holding l and c.
func Write(ctx context.Context, path string, l *Layout, c Content) (err error) {
	if c.Log == nil {
		c.Log = io.Discard
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Truncate(int64(l.Size)); err != nil {
		return err
	}
	if err := writeTable(f, l); err != nil {
		return err
	}
	for _, p := range l.Partitions {
		switch p.FS {
		case "vfat":
			if p.Role == RoleESP {
				if err := writeESP(f, p, c); err != nil {
					return fmt.Errorf("writing the EFI system partition: %w", err)
				}
			}
		case "ext4":
			tree := c.Tree
			if p.Mount != "/" {
				tree = c.Mounts[p.Mount]
			}
			if tree == "" {
				return fmt.Errorf("no content for the ext4 partition %d (%s) mounted at %q; split it out with SplitTree", p.Number, p.Label, p.Mount)
			}
			if err := writeExt4(ctx, path, p, tree, c); err != nil {
				return fmt.Errorf("writing the ext4 filesystem of partition %d (%s): %w", p.Number, p.Label, err)
			}
		case "swap":
			if err := writeSwap(f, p); err != nil {
				return fmt.Errorf("writing swap partition %d: %w", p.Number, err)
			}
		}
	}
	return f.Sync()
}

func writeTable(f *os.File, l *Layout) error {
	w, err := file.New(f, false).Writable()
	if err != nil {
		return err
	}
	if l.Table == platform.MBR {
		t := &mbr.Table{LogicalSectorSize: SectorSize, PhysicalSectorSize: SectorSize}
		for _, p := range l.Partitions {
			mp := &mbr.Partition{Bootable: p.Bootable, Type: mbr.Type(p.Type.MBR), Start: uint32(p.Start / SectorSize), Size: uint32(p.Size / SectorSize)}
			mp.StartCylinder, mp.StartHead, mp.StartSector = chs(p.Start / SectorSize)
			mp.EndCylinder, mp.EndHead, mp.EndSector = chs((p.Start+p.Size)/SectorSize - 1)
			t.Partitions = append(t.Partitions, mp)
		}
		if err := t.Write(w, int64(l.Size)); err != nil {
			return fmt.Errorf("writing the MBR partition table: %w", err)
		}
		sig := make([]byte, 4)
		binary.LittleEndian.PutUint32(sig, l.Signature)
		if _, err := f.WriteAt(append(sig, 0x55, 0xAA), 440); err != nil {
			return err
		}
		_, err = f.WriteAt([]byte{0x55, 0xAA}, 510)
		return err
	}
	t := &gpt.Table{LogicalSectorSize: SectorSize, PhysicalSectorSize: SectorSize, ProtectiveMBR: true, GUID: l.DiskGUID}
	for _, p := range l.Partitions {
		t.Partitions = append(t.Partitions, &gpt.Partition{
			Index: p.Number,
			Start: p.Start / SectorSize,
			End:   (p.Start+p.Size)/SectorSize - 1,
			Size:  p.Size,
			Type:  gpt.Type(p.Type.GUID),
			Name:  p.Label,
			GUID:  p.GUID,
		})
	}
	if err := t.Write(w, int64(l.Size)); err != nil {
		return fmt.Errorf("writing the GPT: %w", err)
	}
	sig := make([]byte, 4)
	binary.LittleEndian.PutUint32(sig, l.Signature)
	_, err = f.WriteAt(sig, 440)
	return err
}

// chs converts an LBA to the CHS triple of an MBR entry (255 heads, 63
// sectors per track), saturating at 1023/254/63 as every partitioner does.
func chs(lba uint64) (cyl, head, sector byte) {
	const heads, spt = 255, 63
	c := lba / (heads * spt)
	if c > 1023 {
		return 0xFF, 0xFE, 0xFF
	}
	h := (lba / spt) % heads
	s := lba%spt + 1
	return byte(c & 0xFF), byte(h), byte(s) | byte((c>>8)<<6)
}

func writeESP(f *os.File, p Partition, c Content) error {
	b := fat32.New()
	for _, file := range c.ESP {
		var err error
		if file.HostPath != "" {
			err = b.AddFile(file.Path, file.HostPath)
		} else {
			err = b.AddBytes(file.Path, file.Data)
		}
		if err != nil {
			return err
		}
	}
	return b.Write(f, int64(p.Start), int64(p.Size), fat32.Options{
		VolumeID: p.VolumeID, Label: strings.ToUpper(p.Label), ModTime: sourceTime(c.SourceDate), HiddenSectors: uint32(p.Start / SectorSize),
	})
}

// Mke2fsArgs builds the mke2fs command line for p (pure; tested).
func Mke2fsArgs(image string, p Partition, tree string) []string {
	return []string{
		Mke2fsCmd, "-t", "ext4", "-F", "-q",
		"-b", "4096",
		"-L", p.Label,
		"-U", p.FSUUID,
		// GRUB before 2.12 cannot read metadata_csum_seed.
		"-O", "^metadata_csum_seed",
		"-E", "offset=" + strconv.FormatUint(p.Start, 10) + ",hash_seed=" + p.FSUUID + ",nodiscard,root_owner=0:0",
		"-d", tree,
		image, strconv.FormatUint(p.Size/4096, 10),
	}
}

func writeExt4(ctx context.Context, image string, p Partition, tree string, c Content) error {
	var env []string
	if c.SourceDate > 0 {
		env = append(env, "E2FSPROGS_FAKE_TIME="+strconv.FormatInt(c.SourceDate, 10))
	}
	if err := run.Run(ctx, run.Cmd{Args: Mke2fsArgs(image, p, tree), Env: env, Log: c.Log}); err != nil {
		return err
	}
	if c.SourceDate > 0 {
		return clampCtimes(ctx, image, p, tree, c.SourceDate, c.Log)
	}
	return nil
}

// DebugfsCmd is the debugfs binary; tests may point it elsewhere.
var DebugfsCmd = "debugfs"

// clampCtimes sets every inode's ctime and atime to epoch. mke2fs -d copies
// both from the host: ctimes record when the tree was made and cannot be set
// from userspace, and atimes move whenever a file is read (mke2fs itself
// reads them); without this, SOURCE_DATE_EPOCH builds would differ.
func clampCtimes(ctx context.Context, image string, p Partition, tree string, epoch int64, log io.Writer) error {
	script, err := os.CreateTemp("", "kiln-ctime-*.debugfs")
	if err != nil {
		return err
	}
	defer os.Remove(script.Name())
	w := bufio.NewWriter(script)
	ts := strconv.FormatInt(epoch, 10)
	err = filepath.WalkDir(tree, func(path string, _ os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel := "/" + filepath.ToSlash(strings.TrimPrefix(strings.TrimPrefix(path, tree), "/"))
		if strings.ContainsAny(rel, "\"\n") {
			return nil // not expressible in a debugfs command; left as mke2fs wrote it
		}
		fmt.Fprintf(w, "sif \"%s\" ctime %s\nsif \"%s\" atime %s\n", rel, ts, rel, ts)
		return nil
	})
	if err == nil {
		err = w.Flush()
	}
	if cerr := script.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	target := image + "?offset=" + strconv.FormatUint(p.Start, 10)
	// debugfs reports a failed command on stderr and goes on; its exit
	// status covers opening the filesystem. The fake time keeps it from
	// stamping the superblock's write time with the clock.
	return run.Run(ctx, run.Cmd{Args: []string{DebugfsCmd, "-w", "-f", script.Name(), target}, Env: []string{"E2FSPROGS_FAKE_TIME=" + ts}, Log: io.Discard})
}

// writeSwap writes a Linux swap header (what mkswap writes) at the partition.
func writeSwap(f *os.File, p Partition) error {
	const page = 4096
	if p.Size < 10*page {
		return errors.New("swap partition too small")
	}
	hdr := make([]byte, page)
	binary.LittleEndian.PutUint32(hdr[1024:], 1)                     // version
	binary.LittleEndian.PutUint32(hdr[1028:], uint32(p.Size/page-1)) // last page
	copy(hdr[1036:1052], uuidBytes(p.FSUUID))                        // uuid
	copy(hdr[1052:1068], p.Label)                                    // volume label
	copy(hdr[page-10:], "SWAPSPACE2")
	_, err := f.WriteAt(hdr, int64(p.Start))
	return err
}

func uuidBytes(u string) []byte {
	h := strings.ReplaceAll(u, "-", "")
	out := make([]byte, 16)
	for i := 0; i < 16 && 2*i+1 < len(h); i++ {
		v, _ := strconv.ParseUint(h[2*i:2*i+2], 16, 8)
		out[i] = byte(v)
	}
	return out
}

// SplitTree moves the content below each nested ext4 mount point of l (such
// as /boot or /var) out of tree into dest/<partition number>, leaving an
// empty mount point with the same mode and owner, and returns the moved
// trees by mount point for Content.Mounts. Deeper mount points go first, so
// /var/log leaves /var before /var leaves /.
func SplitTree(tree string, l *Layout, dest string) (map[string]string, error) {
	out := map[string]string{}
	var mounts []Partition
	for _, p := range l.Partitions {
		if p.FS == "ext4" && p.Mount != "" && p.Mount != "/" {
			mounts = append(mounts, p)
		}
	}
	sort.Slice(mounts, func(i, j int) bool { return strings.Count(mounts[i].Mount, "/") > strings.Count(mounts[j].Mount, "/") })
	for _, p := range mounts {
		// The mount point's parent is resolved inside the tree: a link such
		// as /var -> / must not make the split move host directories.
		parent, err := fsroot.ResolveForWrite(tree, path.Dir(p.Mount))
		if err != nil {
			return nil, err
		}
		src := filepath.Join(parent, path.Base(p.Mount))
		fi, err := os.Lstat(src)
		if errors.Is(err, os.ErrNotExist) {
			if err := os.MkdirAll(src, 0o755); err != nil {
				return nil, err
			}
			fi, err = os.Lstat(src)
		}
		if err != nil {
			return nil, err
		}
		if !fi.IsDir() {
			return nil, fmt.Errorf("mount point %s is not a directory in the tree", p.Mount)
		}
		if err := os.MkdirAll(dest, 0o700); err != nil {
			return nil, err
		}
		dst := filepath.Join(dest, strconv.Itoa(p.Number))
		if err := os.Rename(src, dst); err != nil {
			return nil, err
		}
		if err := os.Mkdir(src, fi.Mode().Perm()); err != nil {
			return nil, err
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			_ = os.Lchown(src, int(st.Uid), int(st.Gid))
			_ = os.Chtimes(src, time.Unix(st.Atim.Sec, st.Atim.Nsec), time.Unix(st.Mtim.Sec, st.Mtim.Nsec))
		}
		out[p.Mount] = dst
	}
	return out, nil
}

func sourceTime(epoch int64) time.Time {
	if epoch > 0 {
		return time.Unix(epoch, 0).UTC()
	}
	return time.Now().UTC()
}

// SetTreeTimes clamps every mtime and atime in tree to epoch
// (SOURCE_DATE_EPOCH): later times become epoch, earlier ones stay.
// Symlinks are not followed. mke2fs then writes the same timestamps for the
// same tree.
func SetTreeTimes(tree string, epoch int64) error {
	return filepath.Walk(tree, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !ok || (st.Mtim.Sec < epoch && st.Atim.Sec < epoch) {
			return nil
		}
		clamp := func(ts syscall.Timespec) syscall.Timespec {
			if ts.Sec >= epoch {
				return syscall.Timespec{Sec: epoch}
			}
			return ts
		}
		return lutimes(p, []syscall.Timespec{clamp(st.Atim), clamp(st.Mtim)})
	})
}
