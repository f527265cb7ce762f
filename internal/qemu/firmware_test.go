package qemu

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// fixtureDirs copies the descriptor fixtures to a temporary directory with
// @FILES@ pointing at testdata/firmware/files, and returns the copies of the
// named directories (share, etc, user) plus the files directory.
func fixtureDirs(t *testing.T, names ...string) (dirs []string, files string) {
	t.Helper()
	files, err := filepath.Abs("testdata/firmware/files")
	require.NoError(t, err)
	root := t.TempDir()
	for _, name := range names {
		src := filepath.Join("testdata/firmware", name)
		dst := filepath.Join(root, name)
		require.NoError(t, os.MkdirAll(dst, 0o755))
		entries, err := os.ReadDir(src)
		require.NoError(t, err)
		for _, e := range entries {
			data, err := os.ReadFile(filepath.Join(src, e.Name()))
			require.NoError(t, err)
			data = []byte(strings.ReplaceAll(string(data), "@FILES@", files))
			require.NoError(t, os.WriteFile(filepath.Join(dst, e.Name()), data, 0o644))
		}
		dirs = append(dirs, dst)
	}
	return dirs, files
}

func TestFindUEFISkipsWhatDoesNotFit(t *testing.T) {
	// share holds, in name order: an aarch64 build, two Secure Boot builds,
	// an i440fx-only build, SeaBIOS, a stateless build, one whose files are
	// missing, then the plain OVMF that must win.
	dirs, files := fixtureDirs(t, "share")
	fw, err := FindUEFI(FirmwareQuery{Dirs: dirs})
	require.NoError(t, err)
	require.Equal(t, &UEFIFirmware{
		Code:         filepath.Join(files, "share-CODE.fd"),
		CodeFormat:   "raw",
		VarsTemplate: filepath.Join(files, "share-VARS.fd"),
		VarsFormat:   "raw",
		Descriptor:   filepath.Join(dirs[0], "50-ovmf.json"),
		Features:     []string{"acpi-s3", "verbose-dynamic"},
	}, fw)
	require.False(t, fw.RequiresSMM())
}

func TestFindUEFISecureBoot(t *testing.T) {
	dirs, files := fixtureDirs(t, "share")
	fw, err := FindUEFI(FirmwareQuery{Dirs: dirs, SecureBoot: true})
	require.NoError(t, err)
	require.Equal(t, filepath.Join(dirs[0], "20-secure-enrolled.json"), fw.Descriptor)
	require.Equal(t, filepath.Join(files, "secure-CODE.fd"), fw.Code)
	require.True(t, fw.RequiresSMM())
}

// EnrolledKeys skips Secure Boot builds whose NVRAM template is in setup
// mode: with 20-secure-enrolled.json hidden, only 30-secure.json is left,
// which has no enrolled keys.
func TestFindUEFIEnrolledKeys(t *testing.T) {
	dirs, _ := fixtureDirs(t, "share")
	fw, err := FindUEFI(FirmwareQuery{Dirs: dirs, SecureBoot: true, EnrolledKeys: true})
	require.NoError(t, err)
	require.Equal(t, filepath.Join(dirs[0], "20-secure-enrolled.json"), fw.Descriptor)

	require.NoError(t, os.WriteFile(filepath.Join(dirs[0], "20-secure-enrolled.json"), nil, 0o644))
	fw, err = FindUEFI(FirmwareQuery{Dirs: dirs, SecureBoot: true})
	require.NoError(t, err)
	require.Equal(t, filepath.Join(dirs[0], "30-secure.json"), fw.Descriptor)
	_, err = FindUEFI(FirmwareQuery{Dirs: dirs, SecureBoot: true, EnrolledKeys: true})
	require.ErrorContains(t, err, "no Secure Boot UEFI firmware with enrolled keys")
	require.ErrorContains(t, err, `30-secure.json: no "enrolled-keys" feature`)
}

func TestFindUEFIHigherDirectoryOverrides(t *testing.T) {
	dirs, files := fixtureDirs(t, "etc", "share")
	fw, err := FindUEFI(FirmwareQuery{Dirs: dirs})
	require.NoError(t, err)
	require.Equal(t, filepath.Join(dirs[0], "50-ovmf.json"), fw.Descriptor)
	require.Equal(t, filepath.Join(files, "etc-CODE-qcow2.fd"), fw.Code)
	require.Equal(t, "qcow2", fw.CodeFormat)
	require.Equal(t, filepath.Join(files, "etc-VARS-qcow2.fd"), fw.VarsTemplate)
	require.Equal(t, "qcow2", fw.VarsFormat)
}

func TestFindUEFIEmptyFileDisables(t *testing.T) {
	// user/50-ovmf.json is empty: it hides 50-ovmf.json in etc and share
	// alike, so the next candidate by name, share/60-ovmf-later.json, wins
	// (its "pc-q35-8.*" glob is covered by the q35 family).
	dirs, files := fixtureDirs(t, "user", "etc", "share")
	fw, err := FindUEFI(FirmwareQuery{Dirs: dirs})
	require.NoError(t, err)
	require.Equal(t, filepath.Join(dirs[2], "60-ovmf-later.json"), fw.Descriptor)
	require.Equal(t, filepath.Join(files, "later-CODE.fd"), fw.Code)
}

func TestFindUEFIMachineGlobs(t *testing.T) {
	dirs, _ := fixtureDirs(t, "share")
	// A concrete version matches the descriptor's glob.
	fw, err := FindUEFI(FirmwareQuery{Dirs: dirs, Machine: "pc-q35-7.2"})
	require.NoError(t, err)
	require.Equal(t, "50-ovmf.json", filepath.Base(fw.Descriptor))
	// i440fx: 40-i440fx-only.json comes first by name and now fits.
	fw, err = FindUEFI(FirmwareQuery{Dirs: dirs, Machine: "pc-i440fx-*"})
	require.NoError(t, err)
	require.Equal(t, "40-i440fx-only.json", filepath.Base(fw.Descriptor))
}

func TestFindUEFINothingFits(t *testing.T) {
	dirs, _ := fixtureDirs(t, "share")
	_, err := FindUEFI(FirmwareQuery{Dirs: dirs, Arch: "riscv64"})
	require.Error(t, err)
	msg := err.Error()
	require.Contains(t, msg, "no UEFI firmware for riscv64")
	require.Contains(t, msg, "searched: "+dirs[0])
	require.Contains(t, msg, "10-aarch64.json: no target for riscv64")
	require.Contains(t, msg, "42-seabios.json: interface-types")
	require.Contains(t, msg, "44-stateless.json: mapping.mode is \"stateless\"")
	require.Contains(t, msg, "70-broken.json: not a valid descriptor")
	require.Contains(t, msg, "apt-get install ovmf")

	// On x86_64 the skip reasons are the Secure Boot and file checks.
	dirs2, _ := fixtureDirs(t, "share")
	require.NoError(t, os.Remove(filepath.Join(dirs2[0], "50-ovmf.json")))
	require.NoError(t, os.Remove(filepath.Join(dirs2[0], "60-ovmf-later.json")))
	_, err = FindUEFI(FirmwareQuery{Dirs: dirs2})
	require.Error(t, err)
	require.Contains(t, err.Error(), `20-secure-enrolled.json: has feature "secure-boot" (Secure Boot not requested)`)
	require.Contains(t, err.Error(), "46-missing-files.json: names a missing file")
}

func TestFindUEFIMissingDirectories(t *testing.T) {
	empty := t.TempDir()
	absent := filepath.Join(empty, "absent")
	_, err := FindUEFI(FirmwareQuery{Dirs: []string{absent, empty}})
	require.Error(t, err)
	require.Contains(t, err.Error(), "searched: "+absent+", "+empty)
	require.Contains(t, err.Error(), "no descriptor files there")
	require.Contains(t, err.Error(), "apt-get install ovmf")
}

func TestFirmwareDirs(t *testing.T) {
	t.Setenv("XDG_CONFIG_HOME", "/xdg")
	require.Equal(t, []string{"/xdg/qemu/firmware", "/etc/qemu/firmware", "/usr/share/qemu/firmware"}, FirmwareDirs())
	t.Setenv("XDG_CONFIG_HOME", "")
	t.Setenv("HOME", "/home/kiln")
	require.Equal(t, []string{"/home/kiln/.config/qemu/firmware", "/etc/qemu/firmware", "/usr/share/qemu/firmware"}, FirmwareDirs())
}

// TestFindUEFIOnThisSystem reads the real descriptor directories.
func TestFindUEFIOnThisSystem(t *testing.T) {
	fw := requireOVMF(t)
	t.Logf("UEFI firmware from %s: %s + %s", fw.Descriptor, fw.Code, fw.VarsTemplate)
	require.FileExists(t, fw.Code)
	require.FileExists(t, fw.VarsTemplate)
	require.NotEmpty(t, fw.CodeFormat)
	require.NotEmpty(t, fw.VarsFormat)
	require.NotContains(t, fw.Features, "secure-boot")
	require.NotContains(t, fw.Features, "enrolled-keys")
}
