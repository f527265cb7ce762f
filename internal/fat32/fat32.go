// Package fat32 writes a new FAT32 filesystem, with a given directory tree,
// into a region of a disk image. Kiln uses it for EFI system partitions.
//
// The output is deterministic: the same tree and the same Options give the
// same bytes. Directory entries are sorted by name, clusters are allocated
// contiguously in a fixed order (all directories, then all files, each in
// depth-first name order), every entry carries Options.ModTime and nothing
// depends on the current time or on map order.
//
// The filesystem uses 512-byte sectors, 32 reserved sectors (boot sector,
// FSInfo at sector 1, backup boot sector at 6, backup FSInfo at 7), two FATs
// and the root directory at cluster 2. The cluster size follows Microsoft's
// FAT32 table (512 B up to 260 MiB, 4 KiB up to 8 GiB, 8 KiB up to 16 GiB,
// 16 KiB up to 32 GiB, 32 KiB above). Names that are not valid upper-case
// 8.3 names get VFAT long-name entries; their short name is the upper-cased
// name where that is a valid 8.3 name, else one with a unique "~N" tail.
//
// Write writes the reserved area, both FATs and every cluster the tree uses,
// and nothing else: the unused data area is never touched, so a sparse image
// file stays sparse.
//
// Reader (read.go) reads files from an existing FAT12/16/32 filesystem, for
// kiln verify; it never writes.
//
// What the package deliberately does not do: it cannot check or modify an
// existing filesystem, it writes only FAT32 (no FAT12 or FAT16, so the
// filesystem must have at least 65525 clusters, see MinSize), it supports only
// 512-byte sectors, and it stores no file attributes other than
// directory/archive, no symlinks and no per-file timestamps.
package fat32

import (
	"errors"
	"fmt"
	"strings"
)

// Builder collects a directory tree and writes it as FAT32 (see Write).
// The zero value is not usable; call New.
type Builder struct {
	root *node
}

// node is a directory or a file of the tree being built.
type node struct {
	name     string
	dir      bool
	children map[string]*node // directories only, keyed by foldName(name)

	// Files: content comes from hostPath (read at write time) or data.
	hostPath string
	fromHost bool
	data     []byte
}

// New returns an empty Builder: a filesystem holding only its root directory.
func New() *Builder {
	return &Builder{root: &node{dir: true, children: map[string]*node{}}}
}

// AddDir creates the directory path and any missing parents, like mkdir -p.
// Paths are slash-separated and relative, e.g. "EFI/BOOT". Adding an
// existing directory again is not an error; a name that already exists as a
// file, or that differs from an existing name only in case, is.
func (b *Builder) AddDir(path string) error {
	parts, err := splitPath(path)
	if err != nil {
		return err
	}
	_, err = b.mkdirAll(path, parts)
	return err
}

// AddFile adds the file path, creating its parent directories. Its content is
// read from hostPath when Write runs, not now.
func (b *Builder) AddFile(path, hostPath string) error {
	if hostPath == "" {
		return fmt.Errorf("fat32: %q: empty host path", path)
	}
	return b.addFile(path, &node{hostPath: hostPath, fromHost: true})
}

// AddBytes adds the file path with the given content, creating its parent
// directories. The content is copied.
func (b *Builder) AddBytes(path string, data []byte) error {
	if int64(len(data)) > MaxFileSize {
		return fmt.Errorf("fat32: %q: %d bytes is larger than the FAT32 file size limit of %d bytes", path, len(data), MaxFileSize)
	}
	return b.addFile(path, &node{data: append([]byte(nil), data...)})
}

func (b *Builder) addFile(path string, f *node) error {
	parts, err := splitPath(path)
	if err != nil {
		return err
	}
	parent, err := b.mkdirAll(path, parts[:len(parts)-1])
	if err != nil {
		return err
	}
	f.name = parts[len(parts)-1]
	key := foldName(f.name)
	if old, ok := parent.children[key]; ok {
		return duplicateError(path, old, f.name)
	}
	parent.children[key] = f
	return nil
}

// mkdirAll walks (and creates) the directories parts below the root.
func (b *Builder) mkdirAll(path string, parts []string) (*node, error) {
	d := b.root
	for _, p := range parts {
		key := foldName(p)
		child, ok := d.children[key]
		switch {
		case !ok:
			child = &node{name: p, dir: true, children: map[string]*node{}}
			d.children[key] = child
		case !child.dir || child.name != p:
			return nil, duplicateError(path, child, p)
		}
		d = child
	}
	return d, nil
}

func duplicateError(path string, old *node, name string) error {
	kind := "file"
	if old.dir {
		kind = "directory"
	}
	if old.name == name {
		return fmt.Errorf("fat32: %q: duplicate name: %s %q already exists", path, kind, old.name)
	}
	return fmt.Errorf("fat32: %q: duplicate name: %q clashes with existing %s %q (FAT names are case-insensitive)", path, name, kind, old.name)
}

// splitPath splits a relative slash-separated path into valid names.
func splitPath(path string) ([]string, error) {
	if path == "" {
		return nil, errors.New("fat32: empty path")
	}
	if strings.HasPrefix(path, "/") {
		return nil, fmt.Errorf("fat32: %q: path must be relative", path)
	}
	parts := strings.Split(path, "/")
	for _, p := range parts {
		if err := validateName(p); err != nil {
			return nil, fmt.Errorf("fat32: %q: %w", path, err)
		}
	}
	return parts, nil
}
