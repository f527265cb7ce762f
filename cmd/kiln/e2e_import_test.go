package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kiln-build/kiln/base"
	"github.com/kiln-build/kiln/bootloader"
	"github.com/kiln-build/kiln/builder"
	"github.com/kiln-build/kiln/internal/sparse"
	"github.com/kiln-build/kiln/platform"
)

// A disk made by hand, not by Kiln: a Debian tree (the bootstrapped base,
// with grub-pc-bin purged as a foreign image might lack it) written with
// sfdisk (an MBR table) and mke2fs -d, with an fstab by label. Imported
// as is, the build stops and names the missing package; with a build step
// that installs it, the image is re-laid out for BIOS, boots and passes
// its tests.
func TestE2EImportHandmadeDisk(t *testing.T) {
	requireE2E(t)
	ctx := context.Background()
	work := t.TempDir()
	tree := filepath.Join(work, "tree")
	deb := base.Debian{Suite: "bookworm", Variant: "minbase", Arch: "amd64", Components: []string{"main"},
		Packages: append(builder.BasePackages(), bootloader.Packages(platform.SecureBootOff)...)}
	_, err := base.Prepare(ctx, deb, tree, base.Options{CacheDir: sharedCache(t)})
	require.NoError(t, err)
	out, err := exec.Command("dpkg", "--root="+tree, "--purge", "--force-depends", "grub-pc-bin").CombinedOutput()
	require.NoError(t, err, string(out))
	require.NoDirExists(t, filepath.Join(tree, "usr/lib/grub/i386-pc"))
	require.NoError(t, os.WriteFile(filepath.Join(tree, "etc/fstab"), []byte("LABEL=handmade / ext4 errors=remount-ro 0 1\n"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(tree, "etc/handmade"), []byte("made by hand\n"), 0o644))

	disk := filepath.Join(work, "handmade.raw")
	require.NoError(t, os.WriteFile(disk, nil, 0o644))
	require.NoError(t, os.Truncate(disk, 2<<30))
	sf := exec.Command("sfdisk", "--no-reread", "--no-tell-kernel", disk)
	sf.Stdin = strings.NewReader("label: dos\nstart=2048, type=83, bootable\n")
	out, err = sf.CombinedOutput()
	require.NoError(t, err, string(out))
	out, err = exec.Command("mke2fs", "-q", "-t", "ext4", "-L", "handmade", "-d", tree, "-E", fmt.Sprintf("offset=%d", 2048*512),
		disk, fmt.Sprintf("%dk", (2<<30-2048*512)/1024)).CombinedOutput()
	require.NoError(t, err, string(out))
	require.NoError(t, os.RemoveAll(tree))
	sum, err := sparse.SHA256(disk)
	require.NoError(t, err)

	recipe := func(steps string) string {
		p := filepath.Join(work, "import.hcl")
		require.NoError(t, os.WriteFile(p, []byte(`
image "handmade" {
  version = "1.0.0"
  base "file" {
    path   = "handmade.raw"
    sha256 = "`+sum+`"
  }
  boot { firmware = "bios" }
  disk { size = "auto" }
`+steps+`
  test "shell" "handmade-content" { inline = ["grep -qx 'made by hand' /etc/handmade"] }
  test "shell" "grub-installed" { inline = ["dpkg -s grub-pc-bin | grep -q 'Status: install ok installed'"] }
  output {
    formats  = ["raw"]
    compress = "none"
  }
}
`), 0o644))
		return p
	}
	images := t.TempDir()
	code, _, errOut := runKiln(t, "build", "--images", images, "--cache", sharedCache(t), recipe(""))
	require.Equal(t, 1, code, errOut)
	require.Contains(t, errOut, "/usr/lib/grub/i386-pc/boot.img (grub-pc-bin for booting under BIOS)")
	require.Contains(t, errOut, "apt-get install -y grub-pc-bin")

	m, _ := buildExample(t, images, recipe(`
  build "shell" "kiln-needs" {
    inline = ["apt-get update", "DEBIAN_FRONTEND=noninteractive apt-get install -y grub-pc-bin"]
  }
`))
	require.Equal(t, "file", m.Parent.Kind)
	require.Equal(t, "raw", m.Parent.Format)
	require.Equal(t, sum, m.Parent.SHA256)
	requirePassed(t, m, []string{"handmade-content", "grub-installed"})
	require.Equal(t, platform.BootBIOS, m.Health[0].Firmware)
}
