// Package guest runs tests inside a booted image.
//
// The harness (a systemd unit and a POSIX shell runner) is written into a
// throwaway copy of the image with e2fsprogs' debugfs, straight into the ext4
// root at its partition offset, with no mount. The runner waits for
// multi-user.target, records the base health checks, runs each test as root
// with a timeout and its KILN_* environment, prints framed results on the
// second serial port (ttyS1) and powers the guest off (without stopping its
// units one by one: the copy is thrown away). The shipped image is never
// touched.
//
// It does not boot QEMU itself (see internal/qemu) or decide what a recipe's
// tests are: package components compiles them (components.GuestSteps).
package guest

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/kiln-build/kiln/components"
	"github.com/kiln-build/kiln/internal/run"
)

// DebugfsCmd is the debugfs binary; tests may point it elsewhere.
var DebugfsCmd = "debugfs"

// Suite is everything the harness runs.
type Suite struct {
	Image, Version string // exported as KILN_IMAGE and KILN_VERSION
	Firmware       string // exported as KILN_FIRMWARE: the firmware this boot runs under
	// Tests run once each, in order: a Script with a #! line, or an ELF
	// executable, runs as is, else with /bin/sh; Env is added to its
	// environment; a Timeout of 0 means 5 minutes. A test's policy and
	// files must be in its script (components.GuestSteps puts them there):
	// Inject refuses Files, Retries and Continue.
	Tests []components.Step
	// BootTimeout bounds the wait for multi-user.target inside the guest.
	BootTimeout time.Duration
	// Profile asks the guest for its slowest units too (KILN-UNITS).
	Profile bool
	// SecureBoot asks for the SecureBoot EFI variable (KILN-SECURE-BOOT),
	// which only a Secure Boot boot is held to: reading it starts programs,
	// each of which costs time under emulation.
	SecureBoot bool
}

// kernelMarkers are the kernel log's messages that mark the start of init,
// the mounting of the root filesystem and systemd's start (see Profile), as
// a grep -E pattern.
const kernelMarkers = initMarker + "|" + rootMarker + "|" + systemdMarker

const (
	// harnessDir is under /etc, which is always on the root filesystem:
	// /var or /usr may be partitions of their own, mounted over what
	// debugfs wrote into the root filesystem.
	harnessDir = "/etc/kiln-test"
	unitName   = "kiln-test.service"
)

// unit runs after multi-user.target is reached; it is wanted by it, so
// systemd starts it on every boot of the throwaway copy.
const unit = `[Unit]
Description=Kiln guest tests
After=multi-user.target
DefaultDependencies=no
# If the runner cannot run at all, stop the guest at once instead of
# leaving it up until the test timeout.
FailureAction=poweroff-force

[Service]
Type=oneshot
ExecStart=/bin/sh ` + harnessDir + `/run
StandardOutput=journal+console
StandardError=journal+console
TimeoutStartSec=infinity

[Install]
WantedBy=multi-user.target
`

// runner is the guest side. Its output protocol, one line each on ttyS1:
//
//	KILN-STATE <state of multi-user.target> <seconds waited>
//	KILN-BOOT <base64 of the boot's clocks: systemd's milestones, kernel lines>
//	KILN-UNITS <base64 of systemd-analyze blame> (only with KILN_PROFILE=1)
//	KILN-SECURE-BOOT <the SecureBoot efivar's value byte, "absent" or "unreadable"> (only with KILN_SECURE_BOOT=1)
//	KILN-FAILED-UNITS <base64 of systemctl --failed>
//	KILN-TEST <index> <exit code> <milliseconds> <base64 of output>
//	KILN-KERNEL <base64 of the kernel log's problem lines (see ConsoleProblems)>
//	KILN-DONE
//
// and one on the console, ttyS0, which the host timestamps as it arrives, so
// that the guest's clock can be placed on the host's (see ParseBoot):
//
//	KILN-CLOCK <seconds since the guest's kernel started>
const runner = `#!/bin/sh
# Written by kiln into a throwaway copy of the image; never shipped.
out=/dev/ttyS1
stty -F $out raw -echo 115200 2>/dev/null || true
exec 3>$out
. ` + harnessDir + `/env
# Each program started costs a lot under emulation: one systemctl call a
# check, its answer split by the shell.
target() {
	show=$(systemctl show -p ActiveState -p ActiveEnterTimestampMonotonic multi-user.target 2>/dev/null)
	state=
	for kv in $show; do case $kv in ActiveState=*) state=${kv#*=} ;; esac; done
}
waited=0
target
while [ "$state" != active ] && [ "$waited" -lt "$KILN_BOOT_TIMEOUT" ]; do
	sleep 1; waited=$((waited+1))
	target
done
read up _ </proc/uptime
echo "KILN-CLOCK $up" >/dev/ttyS0
echo "KILN-STATE $state $waited" >&3
# The boot's milestones on the guest's clocks, for the boot profile:
# multi-user.target's, and the kernel's messages from its log.
echo "KILN-BOOT $( {
	echo "$show"
	dmesg 2>/dev/null | grep -m 6 -E '` + kernelMarkers + `'
} | base64 -w0)" >&3
if [ "$KILN_PROFILE" = 1 ]; then
	echo "KILN-UNITS $(systemd-analyze blame --no-pager 2>&1 | head -n 15 | base64 -w0)" >&3
fi
if [ "$KILN_SECURE_BOOT" = 1 ]; then
sbvar=` + secureBootVar + `
` + secureBootProbe + `fi
# Let units that were still starting settle before looking for failures.
i=0
while [ $i -lt 30 ] && [ -n "$(systemctl list-jobs --no-legend 2>/dev/null | grep -v kiln-test)" ]; do sleep 1; i=$((i+1)); done
echo "KILN-FAILED-UNITS $(systemctl --failed --no-legend --plain 2>&1 | base64 -w0)" >&3
for t in ` + harnessDir + `/tests/*; do
	[ -f "$t" ] || continue
	idx=$(basename "$t")
	to=$(cat ` + harnessDir + `/timeouts/$idx)
	start=$(date +%s%N)
	(
		export KILN_TEST="$(cat ` + harnessDir + `/names/$idx)"
		. ` + harnessDir + `/envs/$idx
		if head -c2 "$t" | grep -q '^#!' || [ "$(head -c4 "$t" | tail -c3)" = ELF ]; then
			exec timeout -k 5 "$to" "$t"
		else
			exec timeout -k 5 "$to" /bin/sh "$t"
		fi
	) >/tmp/kiln-test.out 2>&1 </dev/null
	rc=$?
	end=$(date +%s%N)
	echo "KILN-TEST $idx $rc $(( (end-start)/1000000 )) $(tail -c 8192 /tmp/kiln-test.out | base64 -w0)" >&3
done
echo "KILN-KERNEL $(dmesg 2>/dev/null | grep -E '` + kernelProblemPattern + `' | head -n 50 | base64 -w0)" >&3
echo "KILN-DONE" >&3
# Closing the port waits until its output has gone out. The copy is thrown
# away, so the guest powers off without stopping its units one by one.
exec 3>&-
sync
systemctl poweroff --force
`

// secureBootVar is the SecureBoot EFI variable in efivarfs: 4 bytes of
// attributes, then one byte, 1 when the firmware enforces Secure Boot.
const secureBootVar = "/sys/firmware/efi/efivars/SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c"

// secureBootProbe reports the variable named by $sbvar on fd 3.
const secureBootProbe = `sb=absent
[ -e "$sbvar" ] && sb=$(od -An -tu1 -j4 -N1 "$sbvar" 2>/dev/null | tr -d ' ')
echo "KILN-SECURE-BOOT ${sb:-unreadable}" >&3
`

// Inject writes the harness and the suite into the ext4 filesystem at byte
// offset rootOffset of the raw image. The image must be a throwaway copy;
// the files are staged beside it (in the caller's work directory, which a
// killed build's sweep removes), not in the system's temporary directory.
func Inject(ctx context.Context, image string, rootOffset uint64, s Suite, log io.Writer) error {
	bootTimeout := s.BootTimeout
	if bootTimeout == 0 {
		bootTimeout = 5 * time.Minute
	}
	profile, secureBoot := 0, 0
	if s.Profile {
		profile = 1
	}
	if s.SecureBoot {
		secureBoot = 1
	}
	files := map[string][]byte{
		"unit":   []byte(unit),
		"runner": []byte(runner),
		"env": []byte(fmt.Sprintf("export KILN_IMAGE=%s KILN_VERSION=%s KILN_FIRMWARE=%s KILN_BOOT_TIMEOUT=%d KILN_PROFILE=%d KILN_SECURE_BOOT=%d\n",
			run.QuoteArg(s.Image), run.QuoteArg(s.Version), run.QuoteArg(s.Firmware), int(bootTimeout.Seconds()), profile, secureBoot)),
	}
	for i, t := range s.Tests {
		if len(t.Files) > 0 || t.Retries > 0 || t.Continue {
			return fmt.Errorf("test %q: the guest runs a test's script once: embed its files and policy in the script (components.GuestSteps)", t.Name)
		}
		idx := fmt.Sprintf("%03d", i)
		to := t.Timeout
		if to == 0 {
			to = 5 * time.Minute
		}
		files["test-"+idx] = t.Script
		files["name-"+idx] = []byte(t.Name)
		files["timeout-"+idx] = []byte(strconv.Itoa(int(to.Seconds())) + "s")
		files["envs-"+idx] = envFile(t.Env)
	}
	fs := newExt4(image, rootOffset, log)
	out, err := fs.write(ctx, files, func(dir string) []string { return harnessCommands(dir, files) })
	if err != nil {
		return fmt.Errorf("injecting the test harness: %w", err)
	}
	// debugfs reports per-command errors on stderr but exits 0; verify the result instead.
	check, err := fs.readFile(ctx, harnessDir+"/run")
	if err != nil || !strings.Contains(string(check), "KILN-DONE") {
		return fmt.Errorf("injecting the test harness: %s did not receive %s/run (debugfs said: %s)", image, harnessDir, out)
	}
	return nil
}

// harnessCommands are the debugfs commands that write the harness files,
// which are in dir on the host.
func harnessCommands(dir string, files map[string][]byte) []string {
	cmds := []string{
		"mkdir " + harnessDir,
		"mkdir " + harnessDir + "/tests",
		"mkdir " + harnessDir + "/names",
		"mkdir " + harnessDir + "/timeouts",
		"mkdir " + harnessDir + "/envs",
		"mkdir /etc/systemd/system/multi-user.target.wants",
		"write " + filepath.Join(dir, "unit") + " /etc/systemd/system/" + unitName,
		"write " + filepath.Join(dir, "runner") + " " + harnessDir + "/run",
		"write " + filepath.Join(dir, "env") + " " + harnessDir + "/env",
		"symlink /etc/systemd/system/multi-user.target.wants/" + unitName + " /etc/systemd/system/" + unitName,
	}
	var names []string
	for name := range files {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		kind, idx, ok := strings.Cut(name, "-")
		if !ok {
			continue
		}
		switch kind {
		case "test":
			cmds = append(cmds, "write "+filepath.Join(dir, name)+" "+harnessDir+"/tests/"+idx,
				"sif "+harnessDir+"/tests/"+idx+" mode 0100755")
		case "name":
			cmds = append(cmds, "write "+filepath.Join(dir, name)+" "+harnessDir+"/names/"+idx)
		case "timeout":
			cmds = append(cmds, "write "+filepath.Join(dir, name)+" "+harnessDir+"/timeouts/"+idx)
		case "envs":
			cmds = append(cmds, "write "+filepath.Join(dir, name)+" "+harnessDir+"/envs/"+idx)
		}
	}
	return cmds
}

// envFile renders env as shell exports, sorted for stable output.
func envFile(env map[string]string) []byte {
	keys := make([]string, 0, len(env))
	for k := range env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString(":\n")
	for _, k := range keys {
		fmt.Fprintf(&b, "export %s=%s\n", k, run.QuoteArg(env[k]))
	}
	return []byte(b.String())
}
