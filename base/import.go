package base

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/kiln-build/kiln/catalog"
	"github.com/kiln-build/kiln/disk"
	"github.com/kiln-build/kiln/formats"
	"github.com/kiln-build/kiln/formats/image"
	"github.com/kiln-build/kiln/internal/fsroot"
	"github.com/kiln-build/kiln/internal/sparse"
	"github.com/kiln-build/kiln/manifest"
)

// ImageBase is a base "image": a build from the catalog under Root.
type ImageBase struct {
	Root              string // the catalog (the build's --images)
	Name              string
	Selector          string // version or x-wildcard selector
	Build             int    // with an exact version: this build; 0 for the newest
	IncludeDeprecated bool
}

// FileBase is a base "file": a disk image file that any tool may have made.
type FileBase struct {
	Path   string
	SHA256 string // lowercase hex
}

// selectParent picks the cataloged build b names and the output to read:
// the raw image first (compressed or not), else the first disk format.
func selectParent(b ImageBase) (catalog.Entry, manifest.Output, error) {
	text := b.Name + "@" + b.Selector
	if b.Build > 0 {
		text += fmt.Sprintf("/%d", b.Build)
	}
	ref, err := catalog.ParseRef(text)
	if err != nil {
		return catalog.Entry{}, manifest.Output{}, err
	}
	e, err := catalog.Select(b.Root, ref, b.IncludeDeprecated, time.Now())
	if err != nil {
		var nm *catalog.NoMatchError
		if errors.As(err, &nm) {
			nm.Hint = "set include_deprecated = true in the base block" // the recipe's spelling of the CLI's flag
		}
		return catalog.Entry{}, manifest.Output{}, err
	}
	m, err := manifest.Read(e.Dir)
	if err != nil {
		return catalog.Entry{}, manifest.Output{}, fmt.Errorf("parent %s: reading its manifest: %w", e.ID(), err)
	}
	// The raw image first (compressed or not), else the first disk format.
	rank := map[string]int{"raw": 0, "qcow2": 1, "vmdk": 2, "vhdx": 3, "vhd": 4}
	best := -1
	for i, o := range m.Outputs {
		r, ok := rank[o.Format]
		if ok && strings.Count(o.File, "/") == 0 && o.File != "" && !strings.HasPrefix(o.File, ".") && (best < 0 || r < rank[m.Outputs[best].Format]) {
			best = i
		}
	}
	if best < 0 {
		return catalog.Entry{}, manifest.Output{}, fmt.Errorf("parent %s publishes no disk image Kiln can read (raw, qcow2, vmdk, vhdx or vhd)", e.ID())
	}
	return e, m.Outputs[best], nil
}

// ImageDigest identifies the build an image base selects now, for
// change detection (kiln build --if-changed), without reading its disk: the
// parent's name, version, build and the sha256 its manifest records for the
// disk a build would read. ParentDigest gives the same string for a
// Parent a build imported.
func ImageDigest(b ImageBase) (string, error) {
	e, out, err := selectParent(b)
	if err != nil {
		return "", err
	}
	return ParentDigest(&manifest.Parent{Kind: "image", Name: e.Name, Version: e.Version.String(), Build: e.Build, SHA256: out.SHA256}), nil
}

// ParentDigest is the base digest of an imported parent: its identity and
// its disk's sha256.
func ParentDigest(p *manifest.Parent) string {
	switch p.Kind {
	case "image":
		return fmt.Sprintf("image %s/%s/%d sha256:%s", p.Name, p.Version, p.Build, p.SHA256)
	case "oci":
		// What the reference named: a moved tag is a changed base.
		return fmt.Sprintf("oci %s@%s", p.Ref, p.Digest)
	}
	return "file sha256:" + p.SHA256
}

// ImportImage selects a cataloged build, checks its disk against the
// sha256 its manifest records, and extracts its filesystems into tree.
// scratch is an empty work directory the caller removes.
func ImportImage(ctx context.Context, b ImageBase, tree, scratch string, log io.Writer) (*manifest.Parent, error) {
	e, out, err := selectParent(b)
	if err != nil {
		return nil, err
	}
	file := filepath.Join(e.Dir, out.File)
	p := &manifest.Parent{Kind: "image", Name: e.Name, Version: e.Version.String(), Build: e.Build, Path: file, Format: out.Format, Compression: out.Compression}
	if p.SHA256, err = checkSHA256(file, out.SHA256); err != nil {
		return nil, fmt.Errorf("parent %s: %w; the published artifact was changed or damaged, rebuild the parent", e.ID(), err)
	}
	raw := file
	if out.Compression != "" {
		raw = filepath.Join(scratch, "parent.raw")
		if err := formats.Decompress(ctx, file, raw); err != nil {
			return nil, fmt.Errorf("parent %s: %w", e.ID(), err)
		}
		if out.UncompressedSHA256 != "" {
			if _, err := checkSHA256(raw, out.UncompressedSHA256); err != nil {
				return nil, fmt.Errorf("parent %s: decompressed %s: %w", e.ID(), out.File, err)
			}
		}
	}
	if err := importDisk(ctx, p, raw, tree, scratch, log); err != nil {
		return nil, fmt.Errorf("parent %s: %w", e.ID(), err)
	}
	return p, nil
}

// ImportFile checks a disk image file against its expected sha256, then
// reads its partition table and extracts its filesystems into tree.
func ImportFile(ctx context.Context, b FileBase, tree, scratch string, log io.Writer) (*manifest.Parent, error) {
	p := &manifest.Parent{Kind: "file", Path: b.Path}
	var err error
	if p.SHA256, err = checkSHA256(b.Path, b.SHA256); err != nil {
		return nil, fmt.Errorf("base file %s: %w; if the file is the one you mean, put its sha256 in the recipe", b.Path, err)
	}
	format, err := formats.Detect(b.Path)
	if err != nil {
		return nil, fmt.Errorf("base file %s: %w", b.Path, err)
	}
	raw := b.Path
	switch format {
	case "zstd", "xz":
		p.Compression, format = map[string]string{"zstd": "zstd", "xz": "xz"}[format], "raw"
		raw = filepath.Join(scratch, "base.raw")
		if err := formats.Decompress(ctx, b.Path, raw); err != nil {
			return nil, fmt.Errorf("base file %s: %w", b.Path, err)
		}
	case "ova":
		return nil, fmt.Errorf("base file %s is an OVA archive, not a disk image: unpack it (tar -xf) and point path at its .vmdk", b.Path)
	}
	p.Format = format
	if err := importDisk(ctx, p, raw, tree, scratch, log); err != nil {
		return nil, fmt.Errorf("base file %s: %w", b.Path, err)
	}
	return p, nil
}

// checkSHA256 hashes the file and compares it with want.
func checkSHA256(file, want string) (string, error) {
	got, err := sparse.SHA256(file)
	if err != nil {
		return "", err
	}
	if !strings.EqualFold(got, want) {
		return got, fmt.Errorf("sha256 mismatch: the file has %s, expected %s", got, want)
	}
	return got, nil
}

// importDisk opens file as a virtual disk, makes it a raw file debugfs can
// read, finds the root filesystem and the ext4 filesystems its /etc/fstab
// mounts, and extracts them into tree.
func importDisk(ctx context.Context, p *manifest.Parent, file, tree, scratch string, log io.Writer) error {
	img, err := formats.Open(file)
	if err != nil {
		return fmt.Errorf("cannot read it as a disk image: %w", err)
	}
	defer img.Close()
	if p.Format == "" {
		p.Format = img.Format()
	}
	in, err := disk.Inspect(img, img.Size())
	if err != nil {
		return fmt.Errorf("cannot read its partition table (is it a whole-disk raw, qcow2, VMDK, VHD or VHDX image?): %w", err)
	}
	root, err := in.Root()
	if err != nil {
		return fmt.Errorf("%s partition table with %d partition(s): %w", in.Table, len(in.Partitions), err)
	}
	// debugfs reads raw files only: a raw input is read in place (through a
	// link, so that no "?" in its name reaches debugfs), any other format
	// is copied into a sparse raw file first.
	raw := filepath.Join(scratch, "disk.raw")
	if img.Format() == "raw" {
		abs, err := filepath.Abs(file)
		if err != nil {
			return err
		}
		if err := os.Symlink(abs, raw); err != nil {
			return err
		}
	} else if err := toRaw(img, raw); err != nil {
		return fmt.Errorf("converting the %s disk to raw: %w", img.Format(), err)
	}
	fmt.Fprintf(log, "base: %s disk, %s table; root filesystem on partition %d at offset %d\n", img.Format(), in.Table, root.Number, root.Start)
	if err := os.MkdirAll(tree, 0o755); err != nil {
		return err
	}
	if err := ExtractExt4(ctx, raw, root.Start, tree, log); err != nil {
		return fmt.Errorf("root filesystem (partition %d): %w", root.Number, err)
	}
	uuid, err := ext4UUID(img, root.Start)
	if err != nil {
		return fmt.Errorf("root filesystem (partition %d): %w", root.Number, err)
	}
	p.Extracted = append(p.Extracted, manifest.ExtractedFS{Mount: "/", Partition: root.Number, UUID: uuid})

	mounts, err := fstabMounts(tree)
	if err != nil {
		return err
	}
	for _, m := range mounts {
		var found *disk.Found
		for i := range in.Partitions {
			q := &in.Partitions[i]
			if q.FS != "ext4" || q.Number == root.Number {
				continue
			}
			if u, _ := ext4UUID(img, q.Start); (m.uuid != "" && strings.EqualFold(u, m.uuid)) || (m.label != "" && q.FSLabel == m.label) {
				found = q
				break
			}
		}
		if found == nil {
			if m.optional {
				fmt.Fprintf(log, "base: /etc/fstab mounts %s on %s, which is not on this disk; skipped (nofail/noauto)\n", m.spec, m.dir)
				continue
			}
			return fmt.Errorf("its /etc/fstab mounts %s on %s, but no ext4 partition of the disk is %s; Kiln would lose what is there", m.spec, m.dir, m.spec)
		}
		dest, err := fsroot.MkdirAll(tree, m.dir, 0o755)
		if err != nil {
			return err
		}
		if err := ExtractExt4(ctx, raw, found.Start, dest, log); err != nil {
			return fmt.Errorf("%s filesystem (partition %d): %w", m.dir, found.Number, err)
		}
		u, err := ext4UUID(img, found.Start)
		if err != nil {
			return fmt.Errorf("%s filesystem (partition %d): %w", m.dir, found.Number, err)
		}
		p.Extracted = append(p.Extracted, manifest.ExtractedFS{Mount: m.dir, Partition: found.Number, UUID: u})
	}
	_ = fsroot.RemoveAll(tree, "/lost+found")
	return nil
}

// toRaw writes the virtual disk's data into a new sparse raw file.
func toRaw(img image.Image, dst string) error {
	f, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := image.ForEachBlock(img, 1<<20, func(off int64, data []byte) error {
		_, err := f.WriteAt(data, off)
		return err
	}); err != nil {
		return err
	}
	if err := f.Truncate(img.Size()); err != nil {
		return err
	}
	return f.Close()
}

// ext4UUID reads the filesystem UUID from the ext2/3/4 superblock of the
// partition at off.
func ext4UUID(r io.ReaderAt, off uint64) (string, error) {
	sb := make([]byte, 1024)
	if _, err := r.ReadAt(sb, int64(off)+1024); err != nil {
		return "", err
	}
	if sb[0x38] != 0x53 || sb[0x39] != 0xEF {
		return "", errors.New("not ext2/3/4")
	}
	u := hex.EncodeToString(sb[0x68:0x78])
	return u[0:8] + "-" + u[8:12] + "-" + u[12:16] + "-" + u[16:20] + "-" + u[20:32], nil
}

// fstabMount is an ext2/3/4 filesystem the tree's /etc/fstab mounts below /.
type fstabMount struct {
	spec, dir   string
	uuid, label string
	optional    bool // nofail or noauto
}

// fstabMounts reads the ext2/3/4 (or auto) entries of the tree's
// /etc/fstab other than /, shallowest mount point first. A tree without an
// fstab has none.
func fstabMounts(tree string) ([]fstabMount, error) {
	data, err := fsroot.ReadFile(tree, "/etc/fstab")
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []fstabMount
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 3 || strings.HasPrefix(f[0], "#") {
			continue
		}
		switch f[2] {
		case "ext2", "ext3", "ext4", "auto":
		default:
			continue
		}
		dir := path.Clean("/" + f[1])
		if dir == "/" {
			continue
		}
		m := fstabMount{spec: f[0], dir: dir}
		switch {
		case strings.HasPrefix(f[0], "UUID="):
			m.uuid = strings.Trim(strings.TrimPrefix(f[0], "UUID="), `"`)
		case strings.HasPrefix(f[0], "/dev/disk/by-uuid/"):
			m.uuid = strings.TrimPrefix(f[0], "/dev/disk/by-uuid/")
		case strings.HasPrefix(f[0], "LABEL="):
			m.label = strings.Trim(strings.TrimPrefix(f[0], "LABEL="), `"`)
		case strings.HasPrefix(f[0], "/dev/disk/by-label/"):
			m.label = strings.TrimPrefix(f[0], "/dev/disk/by-label/")
		}
		if len(f) >= 4 {
			for _, o := range strings.Split(f[3], ",") {
				if o == "nofail" || o == "noauto" {
					m.optional = true
				}
			}
		}
		if m.uuid == "" && m.label == "" && !m.optional {
			return nil, fmt.Errorf("its /etc/fstab mounts %s on %s; Kiln finds partitions by UUID= or LABEL= only", f[0], dir)
		}
		out = append(out, m)
	}
	sort.SliceStable(out, func(i, j int) bool { return strings.Count(out[i].dir, "/") < strings.Count(out[j].dir, "/") })
	return out, nil
}
