package qemu

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/kiln-build/kiln/internal/run"
)

// AccelEnv names the environment variable that forces the accelerator
// ("kvm" or "tcg") instead of probing.
const AccelEnv = "KILN_ACCEL"

// kvmDevice is the device DetectAccel opens first.
var kvmDevice = "/dev/kvm"

// probeTimeout bounds the whole KVM probe; a KVM that works answers in
// well under a second.
const probeTimeout = 15 * time.Second

// probeValue is what the probe guests write to the isa-debug-exit port, so
// a passing probe makes QEMU exit with status (probeValue<<1)|1.
const probeValue = 0x2a

var probe struct {
	once   sync.Once
	done   chan struct{}
	accel  string
	reason string
}

// DetectAccel returns "kvm" when KVM demonstrably runs guests on this host
// and "tcg" otherwise. See DetectAccelReason.
func DetectAccel(ctx context.Context) string {
	accel, _ := DetectAccelReason(ctx)
	return accel
}

// DetectAccelReason returns the accelerator and a one-line reason for logs,
// e.g. "KVM probe failed (...): KVM internal error. Suberror: 1; using TCG".
//
// KILN_ACCEL=kvm|tcg decides without probing. Otherwise, without a
// read-write /dev/kvm the answer is TCG; with one, QEMU (DefaultBinary) is
// run under KVM twice, because a /dev/kvm that opens can still fail at run
// time, typically under nested virtualisation:
//
//   - a generated firmware executed in place from read-only pflash, the way
//     OVMF starts, that runs an x87 instruction reading its operand from the
//     flash (which some hosts' KVM cannot emulate: "KVM internal error ...
//     emulation failure") and then writes to isa-debug-exit;
//   - SeaBIOS booting a generated boot-sector disk that writes to
//     isa-debug-exit.
//
// Both must exit with the expected status within 15 seconds. A "KVM internal
// error" on stderr fails the probe at once instead of waiting, since QEMU
// then pauses the guest rather than exiting.
//
// The probe runs once per process, in the background: a cancelled ctx makes
// this call return "tcg" early but does not spoil the cached answer.
func DetectAccelReason(ctx context.Context) (accel, reason string) {
	var prefix string
	if v := os.Getenv(AccelEnv); v != "" {
		if v == "kvm" || v == "tcg" {
			return v, fmt.Sprintf("%s=%s forces it", AccelEnv, v)
		}
		prefix = fmt.Sprintf("ignoring %s=%q (want kvm or tcg); ", AccelEnv, v)
	}
	probe.once.Do(func() {
		probe.done = make(chan struct{})
		go func() {
			defer close(probe.done)
			probe.accel, probe.reason = detect()
		}()
	})
	select {
	case <-probe.done:
		return probe.accel, prefix + probe.reason
	case <-ctx.Done():
		return "tcg", prefix + fmt.Sprintf("accelerator detection interrupted (%v); using TCG", ctx.Err())
	}
}

func detect() (string, string) {
	f, err := os.OpenFile(kvmDevice, os.O_RDWR, 0)
	if err != nil {
		return "tcg", fmt.Sprintf("%v; using TCG", err)
	}
	f.Close()
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), probeTimeout)
	defer cancel()
	if err := probeAccel(ctx, DefaultBinary, "kvm"); err != nil {
		return "tcg", fmt.Sprintf("KVM probe failed after %s: %v; using TCG", time.Since(start).Round(time.Millisecond), err)
	}
	return "kvm", fmt.Sprintf("KVM probe passed in %s", time.Since(start).Round(time.Millisecond))
}

// probeAccel boots the two probe guests under accel and returns nil if both
// reach the exit port.
func probeAccel(ctx context.Context, binary, accel string) error {
	dir, err := os.MkdirTemp("", "kiln-accel-probe-*")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	flash := filepath.Join(dir, "probe-flash.fd")
	disk := filepath.Join(dir, "probe-disk.raw")
	if err := writeResetFlash(flash, flashProbeCode); err != nil {
		return err
	}
	if err := writeBootDisk(disk, diskProbeCode); err != nil {
		return err
	}
	cpu := "max"
	if accel == "kvm" {
		cpu = "host"
	}
	base := []string{binary, "-nodefaults", "-display", "none", "-no-reboot",
		"-machine", "q35,accel=" + accel, "-cpu", cpu, "-m", "64",
		"-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"}
	stages := []struct {
		name  string
		drive string
	}{
		{"firmware executed from flash", "if=pflash,format=raw,unit=0,file=" + optEscape(flash) + ",readonly=on"},
		{"boot sector via SeaBIOS", "file=" + optEscape(disk) + ",format=raw,if=virtio"},
	}
	for _, s := range stages {
		args := append(append([]string(nil), base...), "-drive", s.drive)
		if err := probeStage(ctx, args); err != nil {
			return fmt.Errorf("%s: %w", s.name, err)
		}
	}
	return nil
}

var errKVMInternal = errors.New("KVM internal error")

func probeStage(ctx context.Context, args []string) error {
	sctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	watch := &stderrWatch{onFatal: func() { cancel(errKVMInternal) }}
	err := run.Run(sctx, run.Cmd{Args: args, Stderr: watch})
	want := probeValue<<1 | 1
	var re *run.Error
	switch {
	case errors.As(err, &re) && re.ExitCode == want:
		return nil
	case err == nil:
		return fmt.Errorf("QEMU exited with status 0, not %d: the guest never reached the exit port", want)
	}
	if lines := watch.fatalLines(); len(lines) > 0 {
		return errors.New(strings.Join(lines, "; "))
	}
	msg := err.Error()
	if re != nil {
		switch {
		case context.Cause(sctx) == context.DeadlineExceeded || errors.Is(re.Err, context.DeadlineExceeded):
			msg = "no answer before the probe's deadline"
		case re.ExitCode >= 0:
			msg = fmt.Sprintf("exit status %d, want %d", re.ExitCode, want)
		case re.Err != nil:
			msg = re.Err.Error()
		}
		if s := strings.TrimSpace(re.Stderr); s != "" {
			msg += ": " + strings.Join(lastLines(s, 3), "; ")
		}
	}
	return errors.New(msg)
}

// stderrWatch keeps the start of QEMU's stderr and calls onFatal (once) as
// soon as KVM reports an internal error, after which QEMU would only pause.
type stderrWatch struct {
	onFatal func()
	buf     []byte // the first stderrKeep bytes
	carry   []byte // the end of the previous write, for a match split across writes
	fired   bool
}

const (
	stderrKeep = 16 << 10
	kvmFatal   = "KVM internal error"
)

func (w *stderrWatch) Write(p []byte) (int, error) {
	if room := stderrKeep - len(w.buf); room > 0 {
		w.buf = append(w.buf, p[:min(room, len(p))]...)
	}
	scan := append(w.carry, p...)
	if !w.fired && strings.Contains(string(scan), kvmFatal) {
		w.fired = true
		if w.onFatal != nil {
			w.onFatal()
		}
	}
	w.carry = append([]byte(nil), scan[max(0, len(scan)-len(kvmFatal)):]...)
	return len(p), nil
}

// fatalLines returns the lines that explain a KVM failure, if there was one.
func (w *stderrWatch) fatalLines() []string {
	if !w.fired {
		return nil
	}
	var out []string
	for _, l := range strings.Split(string(w.buf), "\n") {
		if strings.Contains(l, kvmFatal) || strings.Contains(l, "emulation failure") {
			out = append(out, strings.TrimSpace(l))
		}
	}
	return out
}

func lastLines(s string, n int) []string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return lines
}

// Real-mode machine code for the probe guests. Both end by writing
// probeValue to the isa-debug-exit port and halting.
var (
	// Loaded by SeaBIOS at 0000:7c00.
	diskProbeCode = []byte{
		0xfa,             // cli
		0xb0, probeValue, // mov al, probeValue
		0xe6, 0xf4, //       out 0xf4, al
		0xf4,       //       hlt
		0xeb, 0xfd, //       jmp hlt
	}
	// Placed at the reset vector (CS base 0xffff0000, IP 0xfff0), so it runs
	// straight from the flash like the first instructions of OVMF.
	flashProbeCode = []byte{
		0xdb, 0xe3, //                   fninit
		0x2e, 0xd9, 0x2e, 0xe0, 0xff, // fldcw cs:[0xffe0] (a control word in the flash)
		0xb0, probeValue, //             mov al, probeValue
		0xe6, 0xf4, //                   out 0xf4, al
		0xf4,       //                   hlt
		0xeb, 0xfd, //                   jmp hlt
	}
)

// writeBootDisk writes a raw disk whose MBR runs code (at 0000:7c00 under
// SeaBIOS). The 512-byte boot sector is padded, sparsely, to 1 MiB: SeaBIOS
// reports "could not read the boot disk" for disks smaller than one cylinder
// of its fallback geometry (16 heads × 63 sectors, 504 KiB; measured with
// QEMU 7.2's SeaBIOS: 516096 bytes boot, 515584 do not).
func writeBootDisk(path string, code []byte) error {
	if len(code) > 446 {
		return fmt.Errorf("boot code is %d bytes, more than the 446 an MBR holds", len(code))
	}
	sector := make([]byte, 512)
	copy(sector, code)
	sector[510], sector[511] = 0x55, 0xaa
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := f.Write(sector); err != nil {
		f.Close()
		return err
	}
	if err := f.Truncate(1 << 20); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// writeResetFlash writes a 64 KiB flash image, mapped at the top of the 4 GiB
// address space, whose reset vector runs code; the x87 control word 0x037f
// sits at offset 0xffe0 for flashProbeCode to load.
func writeResetFlash(path string, code []byte) error {
	const size = 64 << 10
	if len(code) > 16 {
		return fmt.Errorf("reset code is %d bytes, more than the 16 before the end of the flash", len(code))
	}
	img := make([]byte, size)
	for i := range img {
		img[i] = 0xff // erased flash
	}
	img[0xffe0], img[0xffe1] = 0x7f, 0x03
	copy(img[0xfff0:], code)
	return os.WriteFile(path, img, 0o644)
}
