package fat32

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/kiln-build/kiln/internal/sparse"
	"github.com/kiln-build/kiln/internal/testutil"
	"github.com/stretchr/testify/require"
)

const MiB = 1 << 20

// requireTools skips (or fails with KILN_REQUIRE_QEMU=1) without the judges.
func requireTools(t *testing.T) {
	t.Helper()
	testutil.Require(t, "fsck.vfat", "mdir", "mtype", "mcopy", "minfo")
}

// randomBytes returns n pseudo-random bytes, the same for the same seed.
func randomBytes(seed byte, n int) []byte {
	b := make([]byte, n)
	_, _ = rand.NewChaCha8([32]byte{seed}).Read(b)
	return b
}

// sample is a tree and what it must contain when read back.
type sample struct {
	b     *Builder
	files map[string][]byte // path -> content
	dirs  []string          // every directory, sorted
}

// sampleTree builds the test tree: nested directories, long and colliding
// names, empty files, a directory spanning several clusters and a multi-MB
// host file. Host files live in hostDir.
func sampleTree(t *testing.T, hostDir string) *sample {
	t.Helper()
	s := &sample{b: New(), files: map[string][]byte{}}
	host := func(p string, data []byte) {
		hp := filepath.Join(hostDir, strings.ReplaceAll(p, "/", "_"))
		require.NoError(t, os.WriteFile(hp, data, 0o644))
		require.NoError(t, s.b.AddFile(p, hp))
		s.files[p] = data
	}
	mem := func(p string, data []byte) {
		require.NoError(t, s.b.AddBytes(p, data))
		s.files[p] = data
	}
	host("EFI/BOOT/BOOTX64.EFI", randomBytes(1, 300_000))
	mem("loader/loader.conf", []byte("default debian.conf\ntimeout 3\n"))
	mem("loader/entries/debian.conf", []byte("title Debian\nlinux /vmlinuz-6.1.0-37-cloud-amd64\ninitrd /initrd.img-6.1.0-37-cloud-amd64\n"))
	host("vmlinuz-6.1.0-37-cloud-amd64", randomBytes(2, 5*MiB+123))
	mem("initrd.img-6.1.0-a", randomBytes(3, 70_000))
	mem("initrd.img-6.1.0-b", randomBytes(4, 70_001))
	mem("initrd.img-6.1.0-37-cloud-amd64", randomBytes(5, 1000))
	mem("initrd.img-6.1.0-38-cloud-amd64", randomBytes(6, 1001))
	mem("empty.txt", nil)
	host("EFI/empty-host-file", nil)
	mem("UPPER.TXT", []byte("upper"))
	mem("MixedCase.Txt", []byte("mixed"))
	mem("my file (1).txt", []byte("spaces"))
	mem("Grüße.txt", []byte("utf-8"))
	mem(".hidden", []byte("dot"))
	mem("exact-512", randomBytes(7, 512))
	mem("exact-4096", randomBytes(8, 4096))
	mem("exact-4097", randomBytes(9, 4097))
	mem("a/b/c/d/e/deep.txt", []byte("deep"))
	for i := range 230 {
		mem(fmt.Sprintf("many/entry-%03d.conf", i), []byte(fmt.Sprintf("entry %d\n", i)))
	}
	require.NoError(t, s.b.AddDir("empty-dir"))
	require.NoError(t, s.b.AddDir("EFI/BOOT")) // again: no error

	seen := map[string]bool{}
	for p := range s.files {
		for d := filepath.Dir(p); d != "."; d = filepath.Dir(d) {
			seen[d] = true
		}
	}
	seen["empty-dir"] = true
	for d := range seen {
		s.dirs = append(s.dirs, d)
	}
	sort.Strings(s.dirs)
	return s
}

// newImage creates a sparse file of n bytes.
func newImage(t *testing.T, name string, n int64) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	f, err := os.Create(p)
	require.NoError(t, err)
	require.NoError(t, f.Truncate(n))
	require.NoError(t, f.Close())
	return p
}

// writeFS writes b as a filesystem into the file img.
func writeFS(t *testing.T, b *Builder, img string, offset, size int64, opts Options) {
	t.Helper()
	f, err := os.OpenFile(img, os.O_RDWR, 0)
	require.NoError(t, err)
	defer f.Close()
	require.NoError(t, b.Write(f, offset, size, opts))
	require.NoError(t, f.Close())
}

// extract copies bytes [off, off+n) of img into a new sparse file.
func extract(t *testing.T, img string, off, n int64) string {
	t.Helper()
	in, err := os.Open(img)
	require.NoError(t, err)
	defer in.Close()
	out := newImage(t, "part.img", n)
	o, err := os.OpenFile(out, os.O_WRONLY, 0)
	require.NoError(t, err)
	defer o.Close()
	exts, err := sparse.Extents(in)
	require.NoError(t, err)
	for _, e := range exts {
		start, end := max(e.Off, off), min(e.Off+e.Len, off+n)
		if start < end {
			_, err := io.Copy(io.NewOffsetWriter(o, start-off), io.NewSectionReader(in, start, end-start))
			require.NoError(t, err)
		}
	}
	require.NoError(t, o.Close())
	return out
}

func run(t *testing.T, name string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), "LC_ALL=C.UTF-8")
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func mustRun(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := run(t, name, args...)
	require.NoError(t, err, "%s %s:\n%s", name, strings.Join(args, " "), out)
	return out
}

// fsckLine is every line a clean `fsck.vfat -n -V` run prints.
var fsckLine = regexp.MustCompile(`^(fsck\.fat \S+ \(.*\)|Starting check/repair pass\.|Starting verification pass\.|\S+: \d+ files, \d+/(\d+) clusters)$`)

// fsck runs fsck.vfat -n -V on a file that is just the filesystem and
// requires a clean result: exit 0 and no line but the usual four (so no
// warning about "..", the free cluster count, the backup boot sector, ...).
// It returns the data cluster count fsck found.
func fsck(t *testing.T, img string) string {
	t.Helper()
	out := mustRun(t, "fsck.vfat", "-n", "-V", img)
	var clusters string
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		m := fsckLine.FindStringSubmatch(line)
		require.NotNil(t, m, "fsck.vfat complained: %q\nfull output:\n%s", line, out)
		if m[2] != "" {
			clusters = m[2]
		}
	}
	require.NotEmpty(t, clusters, "no summary line:\n%s", out)
	return clusters
}

func mtoolsImage(img string, off int64) string { return fmt.Sprintf("%s@@%d", img, off) }

// checkContent requires the filesystem at off of img to hold exactly s,
// read back with mtools: mdir lists every path, mcopy -s extracts every
// file with its exact bytes and name, and mtype reads single files.
func checkContent(t *testing.T, s *sample, img string, off int64) {
	t.Helper()
	mi := mtoolsImage(img, off)

	var want []string
	for p := range s.files {
		want = append(want, "::/"+p)
	}
	for _, d := range s.dirs {
		want = append(want, "::/"+d+"/")
	}
	sort.Strings(want)
	got := strings.Split(strings.TrimSpace(mustRun(t, "mdir", "-/", "-b", "-i", mi, "::")), "\n")
	sort.Strings(got)
	require.Equal(t, want, got, "mdir -/ listing")

	out := filepath.Join(t.TempDir(), "out")
	require.NoError(t, os.Mkdir(out, 0o755))
	mustRun(t, "mcopy", "-s", "-n", "-i", mi, "::*", out)
	gotFiles, gotDirs := map[string]string{}, []string{}
	require.NoError(t, filepath.Walk(out, func(p string, fi os.FileInfo, err error) error {
		require.NoError(t, err)
		rel, _ := filepath.Rel(out, p)
		switch {
		case rel == ".":
		case fi.IsDir():
			gotDirs = append(gotDirs, filepath.ToSlash(rel))
		default:
			data, err := os.ReadFile(p)
			require.NoError(t, err)
			gotFiles[filepath.ToSlash(rel)] = sha(data)
		}
		return nil
	}))
	wantFiles := map[string]string{}
	for p, data := range s.files {
		wantFiles[p] = sha(data)
	}
	sort.Strings(gotDirs)
	require.Equal(t, wantFiles, gotFiles, "files extracted by mcopy -s")
	require.Equal(t, s.dirs, gotDirs, "directories extracted by mcopy -s")

	for _, p := range []string{"loader/entries/debian.conf", "vmlinuz-6.1.0-37-cloud-amd64", "many/entry-229.conf", "Grüße.txt"} {
		require.Equal(t, sha(s.files[p]), sha([]byte(mustRun(t, "mtype", "-i", mi, "::/"+p))), "mtype %s", p)
	}
}

func sha(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

func fileSHA(t *testing.T, p string) string {
	t.Helper()
	f, err := os.Open(p)
	require.NoError(t, err)
	defer f.Close()
	h := sha256.New()
	_, err = io.Copy(h, f)
	require.NoError(t, err)
	return hex.EncodeToString(h.Sum(nil))
}

// checkStructure checks, with its own reading of the image, what fsck does
// not: backups equal their originals, both FATs are equal, FSInfo's hint
// is the last allocated cluster and every chain is contiguous.
func checkStructure(t *testing.T, r io.ReaderAt, off, size int64) {
	t.Helper()
	g, err := newGeometry(size)
	require.NoError(t, err)
	read := func(at, n int64) []byte {
		b := make([]byte, n)
		_, err := r.ReadAt(b, off+at)
		require.NoError(t, err)
		return b
	}
	le := binary.LittleEndian
	boot, info := read(0, 512), read(512, 512)
	require.Equal(t, boot, read(6*512, 512), "backup boot sector")
	require.Equal(t, info, read(7*512, 512), "backup FSInfo")
	require.Equal(t, []byte{0xEB, 0x58, 0x90}, boot[:3])
	require.Equal(t, []byte{0x55, 0xAA}, boot[510:])
	require.Equal(t, uint32(0x41615252), le.Uint32(info[0:]))
	require.Equal(t, uint32(0x61417272), le.Uint32(info[484:]))
	require.Equal(t, uint32(0xAA550000), le.Uint32(info[508:]))

	fatBytes := int64(g.fatSectors) * 512
	fat := read(g.fatOffset(0), fatBytes)
	require.True(t, bytes.Equal(fat, read(g.fatOffset(1), fatBytes)), "the two FATs differ")
	require.Equal(t, uint32(0x0FFFFFF8), le.Uint32(fat[0:]))
	require.Equal(t, uint32(0x0FFFFFFF), le.Uint32(fat[4:]))
	var free, last uint32
	for c := uint32(2); c < g.clusters+2; c++ {
		switch v := le.Uint32(fat[c*4:]); v {
		case 0:
			free++
		case eocMark:
			last = c
		default:
			require.Equal(t, c+1, v, "cluster %d: chains are contiguous", c)
			last = c
		}
	}
	require.Equal(t, free, le.Uint32(info[488:]), "FSInfo free count")
	require.Equal(t, last, le.Uint32(info[492:]), "FSInfo hint: last allocated cluster")
	require.Equal(t, g.clusters-(last-1), free, "allocated clusters are 2..last")
	require.Equal(t, make([]byte, fatBytes-int64(g.clusters+2)*4), fat[(g.clusters+2)*4:], "FAT tail beyond the last cluster")
}

var testTime = time.Date(2024, 5, 17, 13, 37, 42, 0, time.UTC)
