package builder

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/kiln-build/kiln/components"
	"github.com/kiln-build/kiln/internal/fsroot"
	"github.com/kiln-build/kiln/internal/guest"
	"github.com/kiln-build/kiln/layers"
	"github.com/kiln-build/kiln/manifest"
)

// StepError reports a failed build step.
type StepError struct {
	Step     string
	ExitCode int
	Tail     string
	Err      error
}

func (e *StepError) Error() string {
	msg := fmt.Sprintf("build step %q failed", e.Step)
	if e.ExitCode >= 0 {
		msg += fmt.Sprintf(" with exit code %d", e.ExitCode)
	} else if e.Err != nil {
		msg += fmt.Sprintf(": %v", e.Err)
	}
	if t := strings.TrimSpace(e.Tail); t != "" {
		msg += "\nlast lines of output:\n"
		for _, l := range strings.Split(t, "\n") {
			msg += "  " + l + "\n"
		}
	}
	return strings.TrimRight(msg, "\n")
}

func (e *StepError) Unwrap() error { return e.Err }

// stepDir holds step scripts while they run; it is removed afterwards.
const stepDir = "/var/lib/kiln-build"

// runSteps runs build steps (compiled by components.BuildSteps) in order.
// While they run, services are kept from starting (policy-rc.d) and the
// host's resolv.conf gives them DNS; both are undone afterwards, whatever
// happens. With a cache, the steps whose layers are cached are restored
// first, and the layer of each cacheable step that runs is stored.
func runSteps(ctx context.Context, tree string, steps []components.Step, log io.Writer, cache *stepCache) (records []manifest.StepRecord, err error) {
	if len(steps) == 0 {
		return nil, nil
	}
	undo, err := prepareForSteps(tree)
	if err != nil {
		return nil, err
	}
	defer func() {
		if uerr := undo(); uerr != nil && err == nil {
			err = uerr
		}
	}()
	keys := cache.keys(steps)
	if records, err = cache.restore(tree, steps, keys); err != nil {
		return records, err
	}
	var snap *layers.Snapshot // the tree before the step, when its layer is to be stored
	for i := len(records); i < len(steps); i++ {
		s := steps[i]
		if keys[i] != "" && snap == nil {
			snap = cache.scan(tree, keys, i)
		}
		start := time.Now()
		fmt.Fprintf(log, "==> build step %q\n", s.Name)
		var err error
		attempts := 0
		for attempts <= s.Retries {
			attempts++
			if err = runStep(ctx, tree, i, s, log); err == nil || ctx.Err() != nil {
				break
			}
			if attempts <= s.Retries {
				fmt.Fprintf(log, "==> build step %q: attempt %d failed (%v); retrying\n", s.Name, attempts, firstLine(err))
			}
		}
		rec := manifest.StepRecord{Name: s.Name, Seconds: time.Since(start).Seconds(), Attempts: attempts}
		if err != nil {
			if !s.Continue || ctx.Err() != nil {
				return records, err
			}
			fmt.Fprintf(log, "==> build step %q failed; on_failure = continue:\n%v\n", s.Name, err)
			rec.Failed = true
			cache.stop(keys, i, fmt.Sprintf("step %q failed", s.Name))
		}
		if keys[i] != "" {
			if snap = cache.commit(tree, i, s, keys, snap); snap != nil {
				rec.CacheKey = keys[i]
			}
		}
		records = append(records, rec)
	}
	return records, nil
}

func prepareForSteps(tree string) (func() error, error) {
	const policy = "/usr/sbin/policy-rc.d"
	if err := fsroot.WriteFile(tree, policy, []byte("#!/bin/sh\n# kiln: no services start while the image is built\nexit 101\n"), 0o755); err != nil {
		return nil, err
	}
	// Give steps the host's DNS; keep what the tree had to put it back.
	oldResolv, oldErr := fsroot.ReadFile(tree, "/etc/resolv.conf")
	if host, err := os.ReadFile("/etc/resolv.conf"); err == nil {
		if err := fsroot.Remove(tree, "/etc/resolv.conf"); err != nil {
			return nil, err
		}
		if err := fsroot.WriteFile(tree, "/etc/resolv.conf", host, 0o644); err != nil {
			return nil, err
		}
	}
	return func() error {
		_ = fsroot.Remove(tree, policy)
		_ = fsroot.RemoveAll(tree, stepDir)
		if oldErr == nil {
			return fsroot.WriteFile(tree, "/etc/resolv.conf", oldResolv, 0o644)
		}
		return fsroot.Remove(tree, "/etc/resolv.conf")
	}, nil
}

// generalise strips what must not ship: machine identity, SSH host keys and
// the snakeoil TLS key (both made anew at first boot), package lists and
// caches, logs, shell history and temporary files.
func generalise(tree, hostname string) error {
	// systemd treats "uninitialized" as first boot and writes a new ID.
	if err := fsroot.Remove(tree, "/etc/machine-id"); err != nil {
		return err
	}
	if err := fsroot.WriteFile(tree, "/etc/machine-id", []byte("uninitialized\n"), 0o444); err != nil {
		return err
	}
	if err := removeRegular(tree, "/var/lib/dbus/machine-id"); err != nil {
		return err
	}
	// Build writes the image's name before the build steps, which may change it.
	if old, err := fsroot.ReadFile(tree, "/etc/hostname"); err == nil && strings.TrimSpace(string(old)) != "" {
		hostname = strings.TrimSpace(string(old))
	} else if err := fsroot.WriteFile(tree, "/etc/hostname", []byte(hostname+"\n"), 0o644); err != nil {
		return err
	}
	hosts := fmt.Sprintf("127.0.0.1\tlocalhost\n127.0.1.1\t%s\n::1\tlocalhost ip6-localhost ip6-loopback\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n", hostname)
	if err := fsroot.WriteFile(tree, "/etc/hosts", []byte(hosts), 0o644); err != nil {
		return err
	}
	globs := []string{
		"/etc/ssh/ssh_host_*",
		"/var/lib/apt/lists/*_*", "/var/cache/apt/*.bin", "/var/cache/apt/archives/*.deb",
		"/var/cache/debconf/*-old", "/var/lib/dpkg/*-old",
		"/root/.bash_history", "/home/*/.bash_history", "/root/.lesshst", "/root/.viminfo",
		"/tmp/*", "/var/tmp/*",
		"/var/lib/systemd/random-seed", "/var/lib/systemd/credential.secret",
	}
	for _, g := range globs {
		if err := removeGlob(tree, g); err != nil {
			return err
		}
	}
	if err := truncateLogs(tree); err != nil {
		return err
	}
	if err := snakeoilUnit(tree); err != nil {
		return err
	}
	return sshKeygenUnit(tree)
}

// snakeoilUnit gives images with ssl-cert their own self-signed "snakeoil"
// TLS key pair, made at first boot: the one ssl-cert's installation made
// would otherwise be the same private key in every machine of the image.
func snakeoilUnit(tree string) error {
	if _, err := os.Lstat(filepath.Join(mustResolve(tree, "/usr/sbin"), "make-ssl-cert")); err != nil {
		return nil
	}
	for _, p := range []string{"/etc/ssl/private/ssl-cert-snakeoil.key", "/etc/ssl/certs/ssl-cert-snakeoil.pem"} {
		if err := removeRegular(tree, p); err != nil {
			return err
		}
	}
	unit := `[Unit]
Description=Generate the snakeoil TLS key pair (kiln)
ConditionPathExists=!/etc/ssl/private/ssl-cert-snakeoil.key
Before=apache2.service nginx.service postfix.service exim4.service dovecot.service

[Service]
Type=oneshot
ExecStart=/usr/sbin/make-ssl-cert generate-default-snakeoil

[Install]
WantedBy=multi-user.target
`
	return installUnit(tree, "kiln-snakeoil.service", unit, "multi-user.target")
}

// sshKeygenUnit makes images with OpenSSH create fresh host keys at first
// boot, since generalise removed the ones made at build time.
func sshKeygenUnit(tree string) error {
	if _, err := os.Lstat(filepath.Join(mustResolve(tree, "/usr/sbin"), "sshd")); err != nil {
		return nil
	}
	return installUnit(tree, guest.SSHHostKeysUnitName, guest.SSHHostKeysUnit, "multi-user.target")
}

func mustResolve(tree, p string) string {
	h, err := fsroot.Resolve(tree, p)
	if err != nil {
		return filepath.Join(tree, "nonexistent")
	}
	return h
}

func removeGlob(tree, pattern string) error {
	dir, err := fsroot.ResolveForWrite(tree, filepath.Dir(pattern))
	if err != nil {
		return err
	}
	matches, _ := filepath.Glob(filepath.Join(dir, filepath.Base(pattern)))
	for _, m := range matches {
		if err := os.RemoveAll(m); err != nil {
			return err
		}
	}
	return nil
}

func removeRegular(tree, p string) error {
	h, err := fsroot.ResolveForWrite(tree, filepath.Dir(p))
	if err != nil {
		return err
	}
	full := filepath.Join(h, filepath.Base(p))
	if fi, err := os.Lstat(full); err == nil && fi.Mode().IsRegular() {
		return os.Remove(full)
	}
	return nil
}

// truncateLogs empties every regular file under /var/log, keeping the
// directories and files that packages expect to exist.
func truncateLogs(tree string) error {
	logDir, err := fsroot.ResolveForWrite(tree, "/var/log")
	if err != nil {
		return err
	}
	if !strings.HasPrefix(logDir, filepath.Clean(tree)+string(filepath.Separator)) {
		return nil
	}
	return filepath.WalkDir(logDir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if d.Type().IsRegular() {
			return os.Truncate(p, 0)
		}
		return nil
	})
}

// kernelVersion returns the version of the kernel /vmlinuz points at.
func kernelVersion(tree string) (string, error) {
	host, err := fsroot.Resolve(tree, "/vmlinuz")
	if err == nil {
		if _, serr := os.Stat(host); serr == nil {
			return strings.TrimPrefix(filepath.Base(host), "vmlinuz-"), nil
		}
	}
	boot, err := fsroot.Resolve(tree, "/boot")
	if err != nil {
		return "", err
	}
	m, _ := filepath.Glob(filepath.Join(boot, "vmlinuz-*"))
	if len(m) == 0 {
		return "", fmt.Errorf("no kernel in the tree (/vmlinuz and /boot/vmlinuz-* are missing); the base must install one")
	}
	sort.Strings(m)
	return strings.TrimPrefix(filepath.Base(m[len(m)-1]), "vmlinuz-"), nil
}
