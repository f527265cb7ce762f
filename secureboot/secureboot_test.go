package secureboot

import (
	"crypto/x509/pkix"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kiln-build/kiln/internal/authenticode"
	"github.com/kiln-build/kiln/internal/fat32"
	"github.com/kiln-build/kiln/internal/testutil"
)

func signer(issuerCN, subjectCN string) authenticode.Signer {
	return authenticode.Signer{Subject: "/CN=" + subjectCN, Issuer: "/C=US/O=Microsoft Corporation/CN=" + issuerCN, DigestOK: true}
}

func TestCheck(t *testing.T) {
	shim := File{Path: "EFI/BOOT/BOOTX64.EFI", Signers: []authenticode.Signer{
		signer("Microsoft Corporation UEFI CA 2011", "Microsoft Windows UEFI Driver Publisher"),
		signer("Microsoft UEFI CA 2023", "Microsoft UEFI CA 2023 signer")}}
	grub := File{Path: "EFI/BOOT/grubx64.efi", Signers: []authenticode.Signer{{Subject: "/CN=Debian Secure Boot Signer 2022 - grub2", Issuer: "/CN=Debian Secure Boot CA", DigestOK: true}}}
	for _, target := range []string{"azure", "gcp"} {
		r := Check([]File{shim, grub}, Platforms[target])
		require.True(t, r.Ready, "%s: %v", target, r.Problems)
		require.Empty(t, r.Problems)
		require.Contains(t, r.Notes[0], "Debian Secure Boot Signer 2022 - grub2")
	}

	unsigned := File{Path: "EFI/BOOT/BOOTX64.EFI", Signers: []authenticode.Signer{}}
	r := Check([]File{unsigned}, Platforms["azure"])
	require.False(t, r.Ready)
	require.Contains(t, r.Problems[0], "is not signed")

	own := File{Path: "EFI/BOOT/BOOTX64.EFI", Signers: []authenticode.Signer{{Subject: "/O=SnakeOil", Issuer: "/O=SnakeOil", DigestOK: true}}}
	r = Check([]File{own}, Platforms["gcp"])
	require.False(t, r.Ready)
	require.Contains(t, r.Problems[0], "--signature-database-file")
	r = Check([]File{own}, Platforms["azure"])
	require.Contains(t, r.Problems[0], "not by a CA in Azure Trusted Launch's default db")

	only2023 := File{Path: "EFI/BOOT/BOOTX64.EFI", Signers: []authenticode.Signer{signer("Microsoft UEFI CA 2023", "s")}}
	require.False(t, Check([]File{only2023, grub}, Platforms["gcp"]).Ready, "the 2023 CA is not in the default db assumed here")

	stale := shim
	stale.Signers = []authenticode.Signer{shim.Signers[0]}
	stale.Signers[0].DigestOK = false
	require.Contains(t, Check([]File{stale, grub}, Platforms["azure"]).Problems[0], "changed after it was signed")

	unsignedGrub := File{Path: "EFI/BOOT/grubx64.efi", Signers: []authenticode.Signer{}}
	require.Contains(t, Check([]File{shim, unsignedGrub}, Platforms["azure"]).Problems[0], "grubx64.efi, which shim starts, is not signed")

	r = Check(nil, Platforms["gcp"])
	require.Contains(t, r.Problems[0], "no EFI/BOOT/BOOTX64.EFI")
	fb := File{Path: "EFI/BOOT/fbx64.efi"}
	require.Contains(t, strings.Join(Check([]File{shim, grub, fb}, Platforms["gcp"]).Notes, "\n"), "fallback")
}

// ReadESP finds the ESP of a GPT disk and describes the signed binary on
// it, as authenticode.Signers reads it, and skips other files.
func TestReadESP(t *testing.T) {
	testutil.Require(t, "sgdisk")
	key, cert := testutil.RSACert(t, pkix.Name{CommonName: "ESP test"}, nil, nil)
	signed, err := authenticode.Sign(testutil.TinyPE(), &authenticode.KeyPair{Key: key, Cert: cert})
	require.NoError(t, err)

	const espStart, espSize = 1 << 20, 40 << 20
	img := filepath.Join(t.TempDir(), "disk.raw")
	f, err := os.Create(img)
	require.NoError(t, err)
	require.NoError(t, f.Truncate(espStart+espSize+(1<<20)))
	require.NoError(t, f.Close())
	out, err := exec.Command("sgdisk", "-n", "1:2048:+40M", "-t", "1:ef00", img).CombinedOutput()
	require.NoError(t, err, "%s", out)
	b := fat32.New()
	require.NoError(t, b.AddBytes("EFI/BOOT/BOOTX64.EFI", signed))
	require.NoError(t, b.AddBytes("EFI/BOOT/mmx64.efi", testutil.TinyPE()))
	require.NoError(t, b.AddBytes("EFI/debian/grub.cfg", []byte("configfile $prefix/grub.cfg\n")))
	f, err = os.OpenFile(img, os.O_RDWR, 0)
	require.NoError(t, err)
	defer f.Close()
	require.NoError(t, b.Write(f, espStart, espSize, fat32.Options{}))

	fi, err := f.Stat()
	require.NoError(t, err)
	files, err := ReadESP(f, fi.Size())
	require.NoError(t, err)
	require.Len(t, files, 2)
	require.Equal(t, "EFI/BOOT/BOOTX64.EFI", files[0].Path)
	require.Equal(t, []authenticode.Signer{{Subject: "/CN=ESP test", Issuer: "/CN=ESP test", DigestOK: true}}, files[0].Signers)
	require.Equal(t, "EFI/BOOT/mmx64.efi", files[1].Path)
	require.Empty(t, files[1].Signers)
	want, _, err := Describe("EFI/BOOT/BOOTX64.EFI", signed)
	require.NoError(t, err)
	require.Equal(t, want.SHA256, files[0].SHA256)
}
