package disk

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
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
	"github.com/kiln-build/kiln/internal/run"
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
	// Tree is the root tree. Each ext4 partition is filled from the
	// subtree at its mount point; a partition mounted below another one
	// is left out of its parent (as an empty mount point). Write moves
	// those subtrees aside while it works and puts them back.
	Tree       string
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
	trees, restore, err := splitTree(c.Tree, l, filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".parts"))
	if err != nil {
		return err
	}
	defer func() {
		if rerr := restore(); rerr != nil && err == nil {
			err = rerr
		}
	}()
	for _, p := range l.Partitions {
		switch p.FS {
		case "vfat":
			if p.Role == RoleESP {
				if err := writeESP(f, p, c); err != nil {
					return fmt.Errorf("writing the EFI system partition: %w", err)
				}
			}
		case "ext4":
			if err := writeExt4(ctx, path, p, trees[p.Number], c); err != nil {
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
	if l.Table == MBR {
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
	return run.Run(ctx, run.Cmd{Args: Mke2fsArgs(image, p, tree), Env: env, Log: c.Log})
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

// splitTree returns the tree each ext4 partition is filled from. Subtrees of
// nested mount points are renamed into work (same filesystem) and replaced
// by empty directories with the same mode and owner; restore undoes it.
func splitTree(tree string, l *Layout, work string) (map[int]string, func() error, error) {
	trees := map[int]string{}
	type moved struct{ from, to string }
	var moves []moved
	restore := func() error {
		var first error
		for i := len(moves) - 1; i >= 0; i-- {
			m := moves[i]
			if err := os.Remove(m.from); err != nil && first == nil {
				first = err
			}
			if err := os.Rename(m.to, m.from); err != nil && first == nil {
				first = err
			}
		}
		os.RemoveAll(work)
		return first
	}
	var mounts []Partition
	for _, p := range l.Partitions {
		if p.FS == "ext4" && p.Mount != "" {
			mounts = append(mounts, p)
		}
	}
	// Deepest first, so /var/log leaves /var before /var leaves /.
	sort.Slice(mounts, func(i, j int) bool { return strings.Count(mounts[i].Mount, "/") > strings.Count(mounts[j].Mount, "/") })
	for _, p := range mounts {
		if p.Mount == "/" {
			trees[p.Number] = tree
			continue
		}
		src := filepath.Join(tree, filepath.FromSlash(strings.TrimPrefix(p.Mount, "/")))
		fi, err := os.Lstat(src)
		if errors.Is(err, os.ErrNotExist) {
			if err := os.MkdirAll(src, 0o755); err != nil {
				return nil, restore, err
			}
			fi, err = os.Lstat(src)
		}
		if err != nil {
			return nil, restore, err
		}
		if !fi.IsDir() {
			return nil, restore, fmt.Errorf("mount point %s is not a directory in the tree", p.Mount)
		}
		if err := os.MkdirAll(work, 0o700); err != nil {
			return nil, restore, err
		}
		dst := filepath.Join(work, strconv.Itoa(p.Number))
		if err := os.Rename(src, dst); err != nil {
			return nil, restore, err
		}
		moves = append(moves, moved{src, dst})
		if err := os.Mkdir(src, fi.Mode().Perm()); err != nil {
			return nil, restore, err
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			_ = os.Lchown(src, int(st.Uid), int(st.Gid))
			_ = os.Chtimes(src, time.Unix(st.Atim.Sec, st.Atim.Nsec), time.Unix(st.Mtim.Sec, st.Mtim.Nsec))
		}
		trees[p.Number] = dst
	}
	return trees, restore, nil
}

func sourceTime(epoch int64) time.Time {
	if epoch > 0 {
		return time.Unix(epoch, 0).UTC()
	}
	return time.Now().UTC()
}

// SetTreeTimes sets every file's mtime in tree to epoch (SOURCE_DATE_EPOCH),
// without following symlinks, so mke2fs writes the same timestamps each time.
func SetTreeTimes(tree string, epoch int64) error {
	t := time.Unix(epoch, 0)
	ts := []syscall.Timespec{syscall.NsecToTimespec(t.UnixNano()), syscall.NsecToTimespec(t.UnixNano())}
	return filepath.Walk(tree, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return lutimes(p, ts)
	})
}
