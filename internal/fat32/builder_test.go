package fat32

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestInvalidNames(t *testing.T) {
	for _, p := range []string{"", "/EFI/BOOT", "EFI//BOOT", "EFI/", "./a", "a/../b", "a*b", "a:b", "dir/a?b", `a\b`, "a|b", `a"b`, "a<b>", "ctl\x07", "trailing.", "trailing ", strings.Repeat("x", 256)} {
		b := New()
		require.Error(t, b.AddBytes(p, []byte("x")), "AddBytes(%q)", p)
		require.Error(t, b.AddDir(p), "AddDir(%q)", p)
		require.Error(t, b.AddFile(p, "/etc/hostname"), "AddFile(%q)", p)
	}
	require.ErrorContains(t, New().AddFile("a", ""), "empty host path")
}

func TestDuplicates(t *testing.T) {
	b := New()
	require.NoError(t, b.AddBytes("EFI/BOOT/BOOTX64.EFI", []byte("x")))
	require.NoError(t, b.AddDir("EFI/BOOT"), "an existing directory again")
	require.NoError(t, b.AddDir("EFI"))
	for _, c := range []struct {
		add  func() error
		what string
	}{
		{func() error { return b.AddBytes("EFI/BOOT/BOOTX64.EFI", nil) }, "same file"},
		{func() error { return b.AddBytes("efi/boot/bootx64.efi", nil) }, "differs in case"},
		{func() error { return b.AddBytes("EFI/BOOT/bootx64.EFI", nil) }, "file name differs in case"},
		{func() error { return b.AddDir("efi") }, "directory differs in case"},
		{func() error { return b.AddBytes("EFI/Boot/grub.cfg", nil) }, "parent differs in case"},
		{func() error { return b.AddBytes("EFI/BOOT", nil) }, "file over directory"},
		{func() error { return b.AddDir("EFI/BOOT/BOOTX64.EFI") }, "directory over file"},
		{func() error { return b.AddBytes("EFI/BOOT/BOOTX64.EFI/x", nil) }, "file as parent"},
		{func() error { return b.AddFile("EFI/BOOT/BOOTX64.EFI", "/etc/hostname") }, "host file over file"},
	} {
		err := c.add()
		require.ErrorContains(t, err, "duplicate name", c.what)
	}
}

func TestWriteErrors(t *testing.T) {
	img := newImage(t, "e.img", 0)
	f, err := os.OpenFile(img, os.O_RDWR, 0)
	require.NoError(t, err)
	defer f.Close()
	write := func(b *Builder, opts Options) error { return b.Write(f, 0, MinSize, opts) }

	// Content too large: nothing at all is written.
	b := New()
	require.NoError(t, b.AddBytes("big.bin", make([]byte, MinSize)))
	w := &memWriter{}
	require.ErrorContains(t, b.Write(w, 0, MinSize, Options{}), "content does not fit")
	require.Zero(t, w.writes)

	require.ErrorContains(t, write(New(), Options{Label: "TWELVE CHARS"}), "longer than 11")
	require.ErrorContains(t, write(New(), Options{Label: "A/B"}), "label")
	require.ErrorContains(t, New().Write(f, -1, MinSize, Options{}), "invalid offset")

	b = New()
	require.NoError(t, b.AddFile("missing", filepath.Join(t.TempDir(), "nope")))
	require.ErrorContains(t, write(b, Options{}), "no such file")

	b = New()
	require.NoError(t, b.AddFile("dir", t.TempDir()))
	require.ErrorContains(t, write(b, Options{}), "not a regular file")

	// 4 GiB: one byte over FAT32's file size limit (a sparse host file).
	huge := filepath.Join(t.TempDir(), "huge")
	h, err := os.Create(huge)
	require.NoError(t, err)
	require.NoError(t, h.Truncate(1<<32))
	require.NoError(t, h.Close())
	b = New()
	require.NoError(t, b.AddFile("huge.bin", huge))
	require.ErrorContains(t, b.Write(f, 0, 8<<30, Options{}), "larger than the FAT32 file size limit")

	// A directory with more than 65536 entries.
	b = New()
	for i := range 33000 {
		require.NoError(t, b.AddBytes(fmt.Sprintf("many/file-%05d", i), nil))
	}
	require.ErrorContains(t, write(b, Options{}), "more than FAT's limit of 65536")

	fi, err := f.Stat()
	require.NoError(t, err)
	require.Zero(t, fi.Size(), "failed writes left the image alone")
}
