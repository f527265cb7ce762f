package guest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/kiln-build/kiln/internal/run"
)

// SSHHostKeysUnitName and SSHHostKeysUnit make an image with OpenSSH create
// its host keys at first boot: images ship without them (the builder's
// generalise stage removes them and installs this unit), and kiln run --ssh
// adds the unit to a throwaway copy of an image that has neither keys nor
// the unit.
const (
	SSHHostKeysUnitName = "kiln-ssh-hostkeys.service"
	SSHHostKeysUnit     = `[Unit]
Description=Generate SSH host keys (kiln)
ConditionPathExistsGlob=!/etc/ssh/ssh_host_*_key
Before=ssh.service

[Service]
Type=oneshot
ExecStart=/usr/bin/ssh-keygen -A

[Install]
WantedBy=multi-user.target
`
)

const (
	// sshAuthorizedKeys holds kiln run's throwaway public key in the copy.
	sshAuthorizedKeys = "/etc/ssh/kiln-run/authorized_keys"
	sshdConfig        = "/etc/ssh/sshd_config"
)

// sshdSettings go first in the copy's sshd_config: for most keywords sshd
// keeps the first value it reads, so these win over the image's own
// settings and its sshd_config.d drop-ins. They let root (and any user the
// image's AllowUsers admits) log in with kiln's key, and nothing else.
const sshdSettings = `# Added by kiln run --ssh to a throwaway copy of the image; never shipped.
PubkeyAuthentication yes
PermitRootLogin prohibit-password
AuthorizedKeysFile .ssh/authorized_keys .ssh/authorized_keys2 ` + sshAuthorizedKeys + `
# The image's own configuration follows.
`

// NoSSHDError says the image has no OpenSSH server.
type NoSSHDError struct{}

func (*NoSSHDError) Error() string {
	return "the image has no OpenSSH server (no /usr/sbin/sshd in its root filesystem): install openssh-server " +
		"(for example with the sshd-hardening component), or use the serial console without --ssh"
}

// NoCloudInitError says the image has no cloud-init.
type NoCloudInitError struct{}

func (*NoCloudInitError) Error() string {
	return "the image has no cloud-init (no /usr/bin/cloud-init in its root filesystem), so nothing would read the seed: " +
		"install it (for example with the cloud-init-nocloud component), or drop --cloud-init"
}

// ext4 reads and writes the ext4 filesystem at an offset of a raw image
// with debugfs, without mounting it.
type ext4 struct {
	target string // image?offset=N, as debugfs takes it
	dir    string // the image's directory, where write stages its host files
	log    io.Writer
}

func newExt4(image string, offset uint64, log io.Writer) ext4 {
	if log == nil {
		log = io.Discard
	}
	return ext4{target: fmt.Sprintf("%s?offset=%d", image, offset), dir: filepath.Dir(image), log: log}
}

// exists says whether path (a file, directory or link) exists.
func (e ext4) exists(ctx context.Context, path string) (bool, error) {
	out, err := run.Output(ctx, run.Cmd{Args: []string{DebugfsCmd, "-R", "stat " + path, e.target}})
	if err != nil {
		return false, err
	}
	return bytes.Contains(out, []byte("Inode:")), nil
}

// readFile returns a regular file's content, or nil when it does not exist.
func (e ext4) readFile(ctx context.Context, path string) ([]byte, error) {
	ok, err := e.exists(ctx, path)
	if err != nil || !ok {
		return nil, err
	}
	return run.Output(ctx, run.Cmd{Args: []string{DebugfsCmd, "-R", "cat " + path, e.target}})
}

// hasProgram says whether the image has a program under /usr. When /usr is
// a filesystem of its own (fstab says so), the root filesystem cannot tell,
// and etcMarker, a file the program's package puts under /etc, decides.
func (e ext4) hasProgram(ctx context.Context, usrPath, etcMarker string) (bool, error) {
	ok, err := e.exists(ctx, usrPath)
	if err != nil || ok {
		return ok, err
	}
	fstab, err := e.readFile(ctx, "/etc/fstab")
	if err != nil {
		return false, err
	}
	if !separateUsr(fstab) {
		return false, nil
	}
	return e.exists(ctx, etcMarker)
}

// separateUsr says whether an fstab mounts a filesystem on /usr.
func separateUsr(fstab []byte) bool {
	for _, l := range strings.Split(string(fstab), "\n") {
		f := strings.Fields(l)
		if len(f) >= 2 && !strings.HasPrefix(f[0], "#") && f[1] == "/usr" {
			return true
		}
	}
	return false
}

// write runs debugfs -w with cmds, which may name the host files given in
// files (name -> content) by their host path, created in a scratch
// directory first; dir is that directory's placeholder in cmds. The
// scratch directory is beside the image (a throwaway copy in the caller's
// work directory, which a killed build's sweep removes), not in the
// system's temporary directory.
func (e ext4) write(ctx context.Context, files map[string][]byte, cmds func(dir string) []string) (string, error) {
	dir, err := os.MkdirTemp(e.dir, "kiln-debugfs-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(dir)
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			return "", err
		}
	}
	script := filepath.Join(dir, "debugfs.cmds")
	if err := os.WriteFile(script, []byte(strings.Join(cmds(dir), "\n")+"\n"), 0o644); err != nil {
		return "", err
	}
	out, err := run.Output(ctx, run.Cmd{Args: []string{DebugfsCmd, "-w", "-f", script, e.target}, Log: e.log})
	return strings.TrimSpace(string(out)), err
}

// CheckCloudInit returns *NoCloudInitError when the root filesystem at
// rootOffset of the raw image has no cloud-init.
func CheckCloudInit(ctx context.Context, image string, rootOffset uint64) error {
	ok, err := newExt4(image, rootOffset, nil).hasProgram(ctx, "/usr/bin/cloud-init", "/etc/cloud/cloud.cfg")
	if err != nil {
		return fmt.Errorf("looking for cloud-init in the image: %w", err)
	}
	if !ok {
		return &NoCloudInitError{}
	}
	return nil
}

// InjectSSH lets the holder of authorizedKey log in to the guest over SSH:
// into the root filesystem at rootOffset of the raw image, which must be a
// throwaway copy, it writes the key, puts sshdSettings first in
// sshd_config, adds the host key unit when the image has neither host keys
// nor that unit, and enables ssh.service when the image has not. An image
// without sshd gets *NoSSHDError and is not changed.
func InjectSSH(ctx context.Context, image string, rootOffset uint64, authorizedKey []byte, log io.Writer) error {
	fs := newExt4(image, rootOffset, log)
	ok, err := fs.hasProgram(ctx, "/usr/sbin/sshd", sshdConfig)
	if err != nil {
		return fmt.Errorf("looking for sshd in the image: %w", err)
	}
	if !ok {
		return &NoSSHDError{}
	}
	config, err := fs.readFile(ctx, sshdConfig)
	if err != nil {
		return err
	}
	has := map[string]bool{}
	for _, p := range []string{
		"/etc/ssh/ssh_host_ed25519_key", "/etc/systemd/system/" + SSHHostKeysUnitName,
		"/etc/systemd/system/multi-user.target.wants/ssh.service", "/etc/systemd/system/multi-user.target.wants/sshd.service",
		"/etc/systemd/system/sockets.target.wants/ssh.socket",
	} {
		if has[p], err = fs.exists(ctx, p); err != nil {
			return err
		}
	}
	files := map[string][]byte{
		"authorized_keys": append(bytes.TrimSpace(authorizedKey), '\n'),
		"sshd_config":     append([]byte(sshdSettings), config...),
		"hostkeys.unit":   []byte(SSHHostKeysUnit),
	}
	out, err := fs.write(ctx, files, func(dir string) []string {
		// debugfs gives what it writes the host file's owner; sshd's
		// StrictModes wants root's, also when kiln runs as another user.
		rootOwned := func(path, mode string) []string {
			return []string{"sif " + path + " uid 0", "sif " + path + " gid 0", "sif " + path + " mode " + mode}
		}
		cmds := []string{"mkdir /etc/ssh/kiln-run"}
		cmds = append(cmds, rootOwned("/etc/ssh/kiln-run", "040755")...)
		cmds = append(cmds, "write "+filepath.Join(dir, "authorized_keys")+" "+sshAuthorizedKeys)
		cmds = append(cmds, rootOwned(sshAuthorizedKeys, "0100644")...)
		cmds = append(cmds, "rm "+sshdConfig, "write "+filepath.Join(dir, "sshd_config")+" "+sshdConfig)
		cmds = append(cmds, rootOwned(sshdConfig, "0100644")...)
		cmds = append(cmds, "mkdir /etc/systemd/system/multi-user.target.wants")
		if !has["/etc/ssh/ssh_host_ed25519_key"] && !has["/etc/systemd/system/"+SSHHostKeysUnitName] {
			unit := "/etc/systemd/system/" + SSHHostKeysUnitName
			cmds = append(cmds, "write "+filepath.Join(dir, "hostkeys.unit")+" "+unit)
			cmds = append(cmds, rootOwned(unit, "0100644")...)
			cmds = append(cmds, "symlink /etc/systemd/system/multi-user.target.wants/"+SSHHostKeysUnitName+" "+unit)
		}
		if !has["/etc/systemd/system/multi-user.target.wants/ssh.service"] && !has["/etc/systemd/system/multi-user.target.wants/sshd.service"] &&
			!has["/etc/systemd/system/sockets.target.wants/ssh.socket"] {
			cmds = append(cmds, "symlink /etc/systemd/system/multi-user.target.wants/ssh.service /lib/systemd/system/ssh.service")
		}
		return cmds
	})
	if err != nil {
		return fmt.Errorf("injecting the SSH key: %w", err)
	}
	// debugfs reports per-command errors on stderr but exits 0; check the result.
	got, err := fs.readFile(ctx, sshAuthorizedKeys)
	if err != nil || !bytes.Equal(got, files["authorized_keys"]) {
		return fmt.Errorf("injecting the SSH key: %s did not receive %s (debugfs said: %s)", image, sshAuthorizedKeys, out)
	}
	if got, err := fs.readFile(ctx, sshdConfig); err != nil || !bytes.HasPrefix(got, []byte(sshdSettings)) {
		return fmt.Errorf("injecting the SSH key: %s did not receive %s (debugfs said: %s)", image, sshdConfig, out)
	}
	return nil
}
