package bootloader

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

func pattern(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = seed + byte(i*7)
	}
	return b
}

// The bytes GRUB's boot.img and diskboot.img expect, pinned.
func TestEmbedBIOSPinsBytes(t *testing.T) {
	img := filepath.Join(t.TempDir(), "disk.raw")
	mbr := make([]byte, 512)
	binary.LittleEndian.PutUint32(mbr[440:], 0xDEADBEEF) // disk signature
	copy(mbr[446:], pattern(64, 0x11))                   // partition table
	mbr[510], mbr[511] = 0x55, 0xAA
	require.NoError(t, os.WriteFile(img, mbr, 0o644))
	require.NoError(t, os.Truncate(img, 4<<20))

	boot := pattern(512, 0x40)
	core := pattern(512*60, 0x90)
	require.NoError(t, EmbedBIOSFile(img, boot, core, 2048, 2048))
	disk, err := os.ReadFile(img)
	require.NoError(t, err)

	got := disk[:512]
	require.Equal(t, boot[:0x5C], got[:0x5C], "boot code before the kernel-sector field")
	require.Equal(t, uint64(2048), binary.LittleEndian.Uint64(got[0x5C:]), "LBA of core.img at 0x5c")
	require.Equal(t, byte(0xFF), got[0x64], "boot drive byte at 0x64")
	require.Equal(t, boot[0x65:440], got[0x65:440], "rest of boot code")
	require.Equal(t, uint32(0xDEADBEEF), binary.LittleEndian.Uint32(got[440:]), "disk signature kept")
	require.Equal(t, pattern(64, 0x11), got[446:510], "partition table kept")
	require.Equal(t, []byte{0x55, 0xAA}, got[510:512])

	c := disk[2048*512 : 2048*512+len(core)]
	require.Equal(t, core[:0x1F4], c[:0x1F4])
	require.Equal(t, uint64(2049), binary.LittleEndian.Uint64(c[0x1F4:]), "blocklist start = LBA+1")
	require.Equal(t, uint16(59), binary.LittleEndian.Uint16(c[0x1FC:]), "blocklist count = sectors-1")
	require.Equal(t, uint16(0x820), binary.LittleEndian.Uint16(c[0x1FE:]), "load segment")
	require.Equal(t, core[512:], c[512:], "rest of core.img unchanged")
}

func TestEmbedBIOSRefusesTooLittleRoom(t *testing.T) {
	img := filepath.Join(t.TempDir(), "disk.raw")
	require.NoError(t, os.WriteFile(img, make([]byte, 1<<20), 0o644))
	err := EmbedBIOSFile(img, make([]byte, 512), make([]byte, 512*100), 1, 50)
	require.ErrorContains(t, err, "needs 100 sectors but only 50")
	err = EmbedBIOSFile(img, make([]byte, 512), make([]byte, 700), 1, 50)
	require.ErrorContains(t, err, "not a whole number of sectors")
}

func TestGrubCfgAndMkimageArgs(t *testing.T) {
	cfg := GrubCfg(Config{RootUUID: "1234", BootPrefix: "/boot", KernelArgs: []string{"quiet"}, Title: "img 1.0"})
	require.Contains(t, cfg, "search --no-floppy --fs-uuid --set=root 1234\n")
	require.Contains(t, cfg, "\tlinux /vmlinuz root=UUID=1234 ro console=tty0 console=ttyS0,115200 quiet\n")
	require.Contains(t, cfg, "\tinitrd /initrd.img\n")
	require.Contains(t, cfg, "set timeout=0\n", "the menu is not drawn unless a recipe asks")
	require.Contains(t, cfg, "\techo 'Loading Linux ...'\n", "the boot profile's bootloader milestone")
	require.Contains(t, GrubCfg(Config{RootUUID: "1234", MenuTimeout: 5}), "set timeout=5\n")
	require.Equal(t, "search --no-floppy --fs-uuid --set=root 1234\nset prefix=($root)/boot/grub\n", earlyConfig(Config{RootUUID: "1234", BootPrefix: "/boot"}))
	require.Equal(t, []string{"grub-mkimage", "-O", "x86_64-efi", "-o", "/tmp/grub.img", "-c", "/tmp/e.cfg", "-p", "/boot/grub", "a", "b"},
		MkimageArgs("x86_64-efi", []string{"a", "b"}, "/tmp/e.cfg", "/boot/grub"))
}

func TestSeparateBootFilesystem(t *testing.T) {
	c := Config{RootUUID: "root-uuid", BootUUID: "boot-uuid", BootPrefix: ""}
	cfg := GrubCfg(c)
	require.Contains(t, cfg, "search --no-floppy --fs-uuid --set=root boot-uuid\n")
	require.Contains(t, cfg, "linux /vmlinuz root=UUID=root-uuid ro")
	require.Equal(t, "search --no-floppy --fs-uuid --set=root boot-uuid\nset prefix=($root)/grub\n", earlyConfig(c))
}
