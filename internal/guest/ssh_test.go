package guest

import (
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kiln-build/kiln/internal/sparse"
	"github.com/kiln-build/kiln/internal/testutil"
	"github.com/stretchr/testify/require"
)

const testOffset = 1 << 20

// ext4Image writes files (path -> content; "->target" makes a symlink)
// into a fresh ext4 at testOffset of a raw image, with mke2fs -d.
func ext4Image(t *testing.T, files map[string]string) string {
	t.Helper()
	testutil.Require(t, "mke2fs", "debugfs", "e2fsck")
	tree := filepath.Join(t.TempDir(), "tree")
	for _, d := range []string{"etc/systemd/system", "etc/ssh", "usr/lib/systemd/system"} {
		require.NoError(t, os.MkdirAll(filepath.Join(tree, d), 0o755))
	}
	for p, content := range files {
		host := filepath.Join(tree, p)
		require.NoError(t, os.MkdirAll(filepath.Dir(host), 0o755))
		if target, ok := strings.CutPrefix(content, "->"); ok {
			require.NoError(t, os.Symlink(target, host))
			continue
		}
		require.NoError(t, os.WriteFile(host, []byte(content), 0o644))
	}
	img := filepath.Join(t.TempDir(), "disk.raw")
	require.NoError(t, os.WriteFile(img, nil, 0o644))
	require.NoError(t, os.Truncate(img, 64<<20))
	out, err := exec.Command("mke2fs", "-t", "ext4", "-q", "-F", "-b", "4096", "-E", "offset=1048576", "-d", tree, img, "8192").CombinedOutput()
	require.NoError(t, err, string(out))
	return img
}

func debugfsCmd(t *testing.T, img, cmd string) string {
	t.Helper()
	out, err := exec.Command("debugfs", "-R", cmd, img+"?offset=1048576").Output()
	require.NoError(t, err)
	return string(out)
}

const imageSSHDConfig = "Include /etc/ssh/sshd_config.d/*.conf\nPermitRootLogin no\n"

func TestInjectSSH(t *testing.T) {
	img := ext4Image(t, map[string]string{
		"usr/sbin/sshd":                      "ELF",
		"lib":                                "->usr/lib",
		"usr/lib/systemd/system/ssh.service": "[Unit]\n",
		"etc/ssh/sshd_config":                imageSSHDConfig,
		"etc/ssh/sshd_config.d/50-kiln-hardening.conf": "PermitRootLogin no\nAllowUsers deploy\n",
	})
	key := "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKiln kiln-run\n"
	require.NoError(t, InjectSSH(context.Background(), img, testOffset, []byte(key), io.Discard))

	require.Equal(t, key, debugfsCmd(t, img, "cat /etc/ssh/kiln-run/authorized_keys"))
	stat := debugfsCmd(t, img, "stat /etc/ssh/kiln-run/authorized_keys")
	require.Regexp(t, `User:\s+0\s+Group:\s+0`, stat)
	require.Regexp(t, `Mode:\s+0?0644`, stat)
	config := debugfsCmd(t, img, "cat /etc/ssh/sshd_config")
	require.True(t, strings.HasPrefix(config, sshdSettings), config)
	require.True(t, strings.HasSuffix(config, imageSSHDConfig), "the image's configuration is kept after kiln's lines")
	require.Contains(t, config, "AuthorizedKeysFile .ssh/authorized_keys .ssh/authorized_keys2 /etc/ssh/kiln-run/authorized_keys\n")
	// No host keys and no unit in the image: the unit is added and enabled.
	require.Equal(t, SSHHostKeysUnit, debugfsCmd(t, img, "cat /etc/systemd/system/kiln-ssh-hostkeys.service"))
	require.Contains(t, debugfsCmd(t, img, "stat /etc/systemd/system/multi-user.target.wants/kiln-ssh-hostkeys.service"), "Fast link dest: \"/etc/systemd/system/kiln-ssh-hostkeys.service\"")
	// ssh.service was not enabled: it is now.
	require.Contains(t, debugfsCmd(t, img, "stat /etc/systemd/system/multi-user.target.wants/ssh.service"), "Fast link dest: \"/lib/systemd/system/ssh.service\"")
	out, err := exec.Command("e2fsck", "-fn", img+"?offset=1048576").CombinedOutput()
	require.NoError(t, err, string(out))
}

// An image that has host keys (or the unit) and an enabled ssh.service
// keeps them as they are.
func TestInjectSSHKeepsWhatTheImageHas(t *testing.T) {
	img := ext4Image(t, map[string]string{
		"usr/sbin/sshd":                "ELF",
		"etc/ssh/ssh_host_ed25519_key": "a host key",
		"etc/systemd/system/multi-user.target.wants/ssh.service": "->/lib/systemd/system/ssh.service",
	})
	require.NoError(t, InjectSSH(context.Background(), img, testOffset, []byte("ssh-ed25519 AAAA k"), io.Discard))
	require.NotContains(t, debugfsCmd(t, img, "ls /etc/systemd/system"), SSHHostKeysUnitName)
	require.Equal(t, "a host key", debugfsCmd(t, img, "cat /etc/ssh/ssh_host_ed25519_key"))
	require.Equal(t, sshdSettings, debugfsCmd(t, img, "cat /etc/ssh/sshd_config"), "an image without sshd_config gets kiln's lines alone")
}

// An image without sshd is refused before anything is written.
func TestInjectSSHWithoutSSHD(t *testing.T) {
	img := ext4Image(t, map[string]string{"etc/ssh/sshd_config": imageSSHDConfig})
	before, err := sparse.SHA256(img)
	require.NoError(t, err)
	err = InjectSSH(context.Background(), img, testOffset, []byte("ssh-ed25519 AAAA k"), io.Discard)
	var no *NoSSHDError
	require.True(t, errors.As(err, &no), "%v", err)
	require.Contains(t, err.Error(), "install openssh-server")
	after, err := sparse.SHA256(img)
	require.NoError(t, err)
	require.Equal(t, before, after, "the image is unchanged")
}

// When /usr is a filesystem of its own, the root filesystem cannot show
// /usr/sbin/sshd: the package's file under /etc decides.
func TestInjectSSHSeparateUsr(t *testing.T) {
	fstab := "UUID=1 / ext4 defaults 0 1\nUUID=2 /usr ext4 defaults 0 2\n"
	img := ext4Image(t, map[string]string{"etc/fstab": fstab, "etc/ssh/sshd_config": imageSSHDConfig})
	require.NoError(t, InjectSSH(context.Background(), img, testOffset, []byte("ssh-ed25519 AAAA k"), io.Discard))

	img = ext4Image(t, map[string]string{"etc/fstab": fstab})
	var no *NoSSHDError
	require.ErrorAs(t, InjectSSH(context.Background(), img, testOffset, []byte("ssh-ed25519 AAAA k"), io.Discard), &no)
}

func TestCheckCloudInit(t *testing.T) {
	img := ext4Image(t, map[string]string{"usr/bin/cloud-init": "#!/usr/bin/python3\n"})
	require.NoError(t, CheckCloudInit(context.Background(), img, testOffset))
	img = ext4Image(t, map[string]string{"usr/bin/python3": "ELF"})
	var no *NoCloudInitError
	require.ErrorAs(t, CheckCloudInit(context.Background(), img, testOffset), &no)
	require.Contains(t, no.Error(), "cloud-init-nocloud")
}

func TestSeparateUsr(t *testing.T) {
	require.True(t, separateUsr([]byte("# comment\nUUID=2\t/usr\text4\tro 0 2\n")))
	require.False(t, separateUsr([]byte("# UUID=2 /usr ext4\nUUID=1 / ext4 defaults 0 1\nUUID=3 /usr/local ext4 defaults 0 2\n")))
}
