package bootloader

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kiln-build/kiln/internal/testutil"
	"github.com/kiln-build/kiln/platform"
)

// elfModule is a minimal ELF64 relocatable object with a .modname section,
// as each module in GRUB's module area is.
func elfModule(name string) []byte {
	shstr := "\x00.modname\x00.shstrtab\x00"
	modname := name + "\x00"
	const ehsize, shentsize = 64, 64
	dataOff := ehsize
	strOff := dataOff + len(modname)
	shoff := (strOff + len(shstr) + 7) &^ 7
	b := make([]byte, shoff+3*shentsize)
	copy(b, "\x7fELF")
	b[4], b[5], b[6] = 2, 1, 1                // 64-bit, little-endian, version 1
	binary.LittleEndian.PutUint16(b[16:], 1)  // ET_REL
	binary.LittleEndian.PutUint16(b[18:], 62) // x86-64
	binary.LittleEndian.PutUint32(b[20:], 1)  // version
	binary.LittleEndian.PutUint64(b[40:], uint64(shoff))
	binary.LittleEndian.PutUint16(b[52:], ehsize)
	binary.LittleEndian.PutUint16(b[58:], shentsize)
	binary.LittleEndian.PutUint16(b[60:], 3) // sections
	binary.LittleEndian.PutUint16(b[62:], 2) // .shstrtab
	copy(b[dataOff:], modname)
	copy(b[strOff:], shstr)
	sh := func(i int, nameOff, typ uint32, off, size int) {
		e := b[shoff+i*shentsize:]
		binary.LittleEndian.PutUint32(e[0:], nameOff)
		binary.LittleEndian.PutUint32(e[4:], typ)
		binary.LittleEndian.PutUint64(e[24:], uint64(off))
		binary.LittleEndian.PutUint64(e[32:], uint64(size))
		binary.LittleEndian.PutUint64(e[48:], 1)
	}
	sh(1, 1, 1, dataOff, len(modname)) // .modname, PROGBITS
	sh(2, 10, 3, strOff, len(shstr))   // .shstrtab, STRTAB
	return b
}

// fakeGrub is a PE image whose "mods" section holds the named modules and a
// prefix, laid out as grub-mkimage lays them out.
func fakeGrub(modules ...string) []byte {
	var mods []byte
	add := func(typ uint32, body []byte) {
		h := make([]byte, 8)
		binary.LittleEndian.PutUint32(h, typ)
		binary.LittleEndian.PutUint32(h[4:], uint32(8+len(body)))
		mods = append(append(mods, h...), body...)
		for len(mods)%8 != 0 { // the next object starts 8-aligned
			mods = append(mods, 0)
		}
	}
	for i, m := range modules {
		add(objTypeELF, elfModule(m))
		if i == 0 {
			add(4, []byte("an OpenPGP key of 29 bytes..")) // OBJ_TYPE_GPG_PUBKEY, its size not a multiple of 8
		}
	}
	add(3, []byte("/EFI/debian\x00\x00\x00\x00\x00")) // OBJ_TYPE_PREFIX
	info := make([]byte, 24)
	binary.LittleEndian.PutUint32(info, modInfoMagic)
	binary.LittleEndian.PutUint64(info[8:], 24)
	binary.LittleEndian.PutUint64(info[16:], uint64(24+len(mods)))
	section := append(info, mods...)

	return testutil.PE(testutil.PESection{Name: "mods", Data: section})
}

func TestEmbeddedModules(t *testing.T) {
	got, err := EmbeddedModules(fakeGrub("serial", "linux", "normal"))
	require.NoError(t, err)
	require.Equal(t, []string{"linux", "normal", "serial"}, got)
	_, err = EmbeddedModules([]byte("MZ not a PE"))
	require.Error(t, err)
}

// Every command in Kiln's GRUB configurations has a known module, and the
// GRUB images Kiln builds contain each one: a locked-down GRUB cannot load
// a missing module from disk, and an unsigned one may not find it either.
func TestConfigsNeedOnlyBuiltInModules(t *testing.T) {
	c := Config{RootUUID: "r", BootPrefix: "/boot", KernelArgs: []string{"quiet"}, Title: "t"}
	for _, tc := range []struct {
		name, cfg string
		image     []string
	}{
		{"grub.cfg under UEFI", GrubCfg(c), EFIModules},
		{"grub.cfg under BIOS", GrubCfg(c), BIOSModules},
		{"the distro bootstrap", distroBootstrap(c), []string{"configfile", "search"}},
		{"the custom chain's config", customConfig(c, "/boot/vmlinuz-6", "/boot/initrd.img-6"), append(append([]string{}, EFIModules...), CustomModules...)},
	} {
		need, err := NeededModules(tc.cfg)
		require.NoError(t, err, tc.name)
		require.NotEmpty(t, need)
		for _, m := range need {
			require.Contains(t, tc.image, m, "%s needs %s", tc.name, m)
		}
	}
	_, err := NeededModules("serial --unit=0\nfrobnicate now\n")
	require.ErrorContains(t, err, `"frobnicate"`)
}

func TestDistroChain(t *testing.T) {
	tree := t.TempDir()
	put := func(p string, data []byte) {
		require.NoError(t, os.MkdirAll(filepath.Join(tree, filepath.Dir(p)), 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(tree, p), data, 0o644))
	}
	c := Config{RootUUID: "root-uuid", BootPrefix: "/boot"}
	put("/usr/lib/shim/shimx64.efi.signed", []byte("shim"))
	_, err := DistroChain(tree, c)
	require.ErrorContains(t, err, "from the package grub-efi-amd64-signed")

	put("/usr/lib/grub/x86_64-efi-signed/grubx64.efi.signed", fakeGrub("configfile", "search", "normal", "linux", "terminal", "echo"))
	put("/usr/lib/shim/mmx64.efi.signed", []byte("mm"))
	_, err = DistroChain(tree, c)
	require.ErrorContains(t, err, "lacks the GRUB module(s) serial")

	grub := fakeGrub("configfile", "search", "normal", "linux", "terminal", "echo", "serial")
	put("/usr/lib/grub/x86_64-efi-signed/grubx64.efi.signed", grub)
	files, err := DistroChain(tree, c)
	require.NoError(t, err)
	var paths []string
	for _, f := range files {
		paths = append(paths, f.Path)
	}
	require.Equal(t, []string{"EFI/BOOT/BOOTX64.EFI", "EFI/BOOT/grubx64.efi", "EFI/BOOT/mmx64.efi", "EFI/debian/grub.cfg"}, paths)
	require.Equal(t, "shim", string(files[0].Data))
	require.Equal(t, grub, files[1].Data)
	require.False(t, slices.ContainsFunc(paths, func(p string) bool { return strings.Contains(strings.ToLower(p), "fbx64") }), "no fallback beside shim")
	cfg := string(files[3].Data)
	require.Contains(t, cfg, "search --no-floppy --fs-uuid --set=root root-uuid\n")
	require.Contains(t, cfg, "set prefix=($root)/boot/grub\nconfigfile $prefix/grub.cfg\n")

	require.NoError(t, os.Remove(filepath.Join(tree, "/usr/lib/shim/mmx64.efi.signed")))
	_, err = DistroChain(tree, c)
	require.ErrorContains(t, err, "from the package shim-helpers-amd64-signed")
}

func TestPackages(t *testing.T) {
	require.Equal(t, []string{"grub-pc-bin", "grub-efi-amd64-bin", "grub-common"}, Packages(platform.SecureBootOff))
	require.Equal(t, Packages(platform.SecureBootOff), Packages(platform.SecureBootCustom), "custom signs what the base has")
	require.Equal(t, []string{"grub-pc-bin", "grub-efi-amd64-bin", "grub-common", "shim-signed", "grub-efi-amd64-signed", "shim-helpers-amd64-signed"},
		Packages(platform.SecureBootDistro))
}

func TestCustomConfig(t *testing.T) {
	c := Config{RootUUID: "root-uuid", BootUUID: "boot-uuid", BootPrefix: "", KernelArgs: []string{"quiet"}}
	cfg := customConfig(c, "/vmlinuz-6.12", "/initrd.img-6.12")
	require.Contains(t, cfg, "search --no-floppy --fs-uuid --set=root boot-uuid\n")
	require.Contains(t, cfg, "set check_signatures=enforce\nlinux /vmlinuz-6.12 root=UUID=root-uuid ro console=tty0 console=ttyS0,115200 quiet\nset check_signatures=no\ninitrd /initrd.img-6.12\nboot\n")
}

func TestDefaultGrub(t *testing.T) {
	got := DefaultGrub(Config{KernelArgs: []string{"quiet", "net.ifnames=0"}})
	require.Contains(t, got, "GRUB_CMDLINE_LINUX=\"console=tty0 console=ttyS0,115200 quiet net.ifnames=0\"\n")
	require.Contains(t, got, "GRUB_DISTRIBUTOR=Kiln\n", "not debian: shim-signed's postinst runs no grub-install")
	require.Contains(t, got, "GRUB_SERIAL_COMMAND=\"serial --unit=0 --speed=115200\"\n")
}
