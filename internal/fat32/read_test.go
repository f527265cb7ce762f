package fat32

import (
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// What Kiln's writer wrote, the reader reads back: every file and
// directory of the sample tree, at an offset inside a disk image.
func TestReadBackWhatWriteWrote(t *testing.T) {
	s := sampleTree(t, t.TempDir())
	const off, size = 3 * MiB, 64 * MiB
	img := newImage(t, "disk.img", off+size+MiB)
	writeFS(t, s.b, img, off, size, Options{Label: "ESP", VolumeID: 0x1234, ModTime: time.Unix(1700000000, 0)})
	f, err := os.Open(img)
	require.NoError(t, err)
	defer f.Close()
	r, err := Open(f, off, size)
	require.NoError(t, err)
	for p, want := range s.files {
		got, err := r.ReadFile(p, 1<<30)
		require.NoError(t, err, p)
		require.Equal(t, sha(want), sha(got), p)
	}
	for _, d := range s.dirs {
		_, err := r.ReadDir(d)
		require.NoError(t, err, d)
	}
	many, err := r.ReadDir("many")
	require.NoError(t, err)
	require.Len(t, many, 230, "a directory spanning several clusters")
	got, err := r.ReadFile("efi/boot/bootx64.efi", 1<<30)
	require.NoError(t, err, "names match case-insensitively")
	require.Equal(t, sha(s.files["EFI/BOOT/BOOTX64.EFI"]), sha(got))
	_, err = r.ReadFile("EFI/BOOT/grubx64.efi", 1<<30)
	require.True(t, IsNotExist(err))
	_, err = r.ReadFile("vmlinuz-6.1.0-37-cloud-amd64", 1000)
	require.ErrorContains(t, err, "more than the 1000")
}

// The reader reads filesystems mkfs.vfat made and mtools filled, FAT16 and
// FAT32, as ESPs made by other tools are.
func TestReadMkfsVfat(t *testing.T) {
	requireTools(t)
	testutil := func(name string, args ...string) { mustRun(t, name, args...) }
	for _, fatSize := range []string{"16", "32"} {
		t.Run("FAT"+fatSize, func(t *testing.T) {
			img := newImage(t, "esp.img", 100*MiB)
			mustRun(t, "mkfs.vfat", "-F", fatSize, "-n", "ESP", img)
			src := t.TempDir()
			files := map[string][]byte{
				"EFI/BOOT/BOOTX64.EFI":   randomBytes(11, 900_000),
				"EFI/BOOT/grubx64.efi":   randomBytes(12, 2_000_000),
				"EFI/debian/grub.cfg":    []byte("configfile $prefix/grub.cfg\n"),
				"EFI/BOOT/A Long Name.x": []byte("long"),
			}
			var names []string
			for p := range files {
				names = append(names, p)
			}
			sort.Strings(names)
			testutil("mmd", "-i", img, "::/EFI", "::/EFI/BOOT", "::/EFI/debian")
			for _, p := range names {
				hp := filepath.Join(src, filepath.Base(p))
				require.NoError(t, os.WriteFile(hp, files[p], 0o644))
				testutil("mcopy", "-i", img, hp, "::/"+p)
			}
			f, err := os.Open(img)
			require.NoError(t, err)
			defer f.Close()
			r, err := Open(f, 0, 100*MiB)
			require.NoError(t, err)
			if fatSize == "16" {
				require.Equal(t, 16, r.fatBits)
			}
			for p, want := range files {
				got, err := r.ReadFile(p, 1<<30)
				require.NoError(t, err, p)
				require.Equal(t, sha(want), sha(got), p)
			}
			entries, err := r.ReadDir("EFI/BOOT")
			require.NoError(t, err)
			var got []string
			for _, e := range entries {
				got = append(got, e.Name)
			}
			sort.Strings(got)
			require.Equal(t, []string{"A Long Name.x", "BOOTX64.EFI", "grubx64.efi"}, got)
		})
	}
}

func TestOpenRejectsNonFAT(t *testing.T) {
	img := newImage(t, "zero.img", 4*MiB)
	f, err := os.Open(img)
	require.NoError(t, err)
	defer f.Close()
	_, err = Open(f, 0, 4*MiB)
	require.ErrorIs(t, err, ErrNotFAT)
}

// A hostile filesystem is an error, never a panic or a hang.
func FuzzReader(f *testing.F) {
	b := New()
	_ = b.AddBytes("EFI/BOOT/BOOTX64.EFI", []byte("boot"))
	w := &memWriter{}
	_ = b.Write(w, 0, MinSize, Options{})
	f.Add(w.b[:64*1024])
	f.Fuzz(func(t *testing.T, data []byte) {
		img := make([]byte, MinSize)
		copy(img, data)
		r, err := Open(bytesReaderAt(img), 0, int64(len(img)))
		if err != nil {
			return
		}
		_, _ = r.ReadDir("EFI/BOOT")
		_, _ = r.ReadFile("EFI/BOOT/BOOTX64.EFI", 1<<20)
	})
}

type bytesReaderAt []byte

func (b bytesReaderAt) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 || off >= int64(len(b)) {
		return 0, os.ErrInvalid
	}
	n := copy(p, b[off:])
	if n < len(p) {
		return n, os.ErrInvalid
	}
	return n, nil
}
