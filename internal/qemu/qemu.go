// Package qemu boots disk images in QEMU (qemu-system-x86_64) to test them.
//
// Options describes one boot; Options.Cmdline turns it into an argv without
// touching the filesystem, so the exact command can be logged and re-run by
// hand; Run starts it, like every Kiln subprocess through internal/run (own
// process group, SIGKILL if Kiln dies), bounds it with a timeout and reports
// how it ended. Guests are headless (-nodefaults -display none), have no
// network unless asked, and talk to the host only through serial ports:
// ttyS0 goes to a console log, further ports to files of their own. A guest
// that powers off or reboots (-no-reboot) ends the run successfully.
//
// Firmware is SeaBIOS (QEMU's default) or UEFI; UEFI firmware is found
// through QEMU's firmware descriptor files (FindUEFI), never by hard-coded
// paths, and each boot gets its own writable copy of the NVRAM template.
// DetectAccel chooses KVM only after a real probe shows it runs guests, and
// TCG otherwise.
//
// It deliberately does not: build, convert or copy disk images (callers pass
// disks and may ask for snapshot=on); interpret the guest's serial output or
// decide whether a test passed; talk QMP, share directories or attach
// displays; retry a boot; or support guests other than x86_64. Its only
// way in from the host is Forwards on the user-mode network.
package qemu

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/kiln-build/kiln/internal/livedir"
	"github.com/kiln-build/kiln/internal/run"
	"github.com/kiln-build/kiln/platform"
)

// DefaultBinary is the QEMU used when Options.Binary is empty, and by the KVM
// probe; tests may point it elsewhere.
var DefaultBinary = "qemu-system-x86_64"

// DebugExitPort is the I/O port of the isa-debug-exit device Options.DebugExit
// adds.
const DebugExitPort = 0xf4

// Firmware is what the guest boots with.
type Firmware int

const (
	BIOS Firmware = iota // SeaBIOS, QEMU's default
	UEFI                 // OVMF, found through firmware descriptors
)

func (f Firmware) String() string {
	switch f {
	case BIOS:
		return "bios"
	case UEFI:
		return "uefi"
	}
	return "Firmware(" + strconv.Itoa(int(f)) + ")"
}

// Disk is one disk attached to the guest, in order.
type Disk struct {
	Path string
	// Format is the image format, required (QEMU's format probing is unsafe
	// for raw images): raw, qcow2, vmdk, vpc (VHD) or vhdx.
	Format string
	// Interface is how the guest sees the disk: "virtio" (the default),
	// "ide" (SATA/AHCI on q35), "nvme" or "scsi" (virtio-scsi).
	Interface string
	ReadOnly  bool // readonly=on
	Snapshot  bool // snapshot=on: writes go to a temporary overlay and are dropped
}

// Options describes one boot. Zero values mean the defaults below; Cmdline
// also needs Accel, and VarsFile for UEFI, which Run fills in itself.
type Options struct {
	Binary    string // default DefaultBinary
	Accel     string // "kvm" or "tcg"; Run fills an empty one from DetectAccel, Cmdline refuses it
	Machine   string // default "q35"; ",accel=" (and ",smm=on" if the firmware needs it) are appended
	MemoryMiB int    // default 1024
	CPUs      int    // default DefaultCPUs(Accel)
	// TCGCPU is the guest's CPU under TCG; default DefaultTCGCPU(). Under
	// KVM the guest gets the host's CPU.
	TCGCPU platform.TCGCPU

	Firmware Firmware
	// UEFI is the firmware to use when Firmware is UEFI; nil means FindUEFI
	// with the default descriptor directories. Ignored for BIOS.
	UEFI *UEFIFirmware
	// VarsFile is the guest's writable NVRAM. Run copies the template there if
	// the file does not exist (an existing one is used as is, so variables can
	// persist across boots) and, if VarsFile is empty, uses a copy in a
	// temporary directory removed afterwards. Cmdline needs it set.
	VarsFile string

	Disks []Disk

	// ConsoleLog receives ttyS0 (truncated first); empty means the output is
	// dropped unless Console is set.
	ConsoleLog string
	// ExtraSerials are files for ttyS1, ttyS2 and ttyS3.
	ExtraSerials []string
	// Console, if set, receives a live copy of ttyS0: QEMU then writes ttyS0
	// to its stdout (a stdio chardev) and Run copies that here and to
	// ConsoleLog, the log first, so that what a StopOn match saw is in the
	// log when QEMU is stopped. A slow writer slows the guest's console,
	// nothing else.
	Console io.Writer
	// Stdin, with Console, makes ttyS0 interactive as -nographic does: QEMU
	// reads keystrokes from it, multiplexed with its monitor (Ctrl-A x
	// quits, Ctrl-A c switches to the monitor, Ctrl-C goes to the guest).
	Stdin io.Reader

	// Network adds a user-mode NIC (-nic user,model=virtio-net-pci).
	Network bool
	// Forwards, with Network, make host ports reach guest ports through
	// the user-mode network (hostfwd): kiln run --ssh forwards a loopback
	// port to the guest's sshd.
	Forwards []Forward
	// DebugExit adds isa-debug-exit at DebugExitPort: a guest writing v
	// there makes QEMU exit at once with status (v<<1)|1. Run then treats an
	// odd status above 1 as the guest's answer, not a failure (see Result).
	// Status 1 stays a failure, since QEMU also uses it for its own errors,
	// so guests should not write 0.
	DebugExit bool

	// TPM, when set, gives the guest a TPM 2.0 (swtpm on tpm-tis). Run
	// starts swtpm before QEMU and stops it after.
	TPM *TPM
	// StopOn ends the run as soon as ttyS0 shows one of these strings, so
	// that a boot whose outcome is already known (firmware refusing to
	// start the boot loader, say) does not sit out the timeout. It is not
	// an error: Result.StoppedOn says which string was seen. ttyS0 is then
	// read through QEMU's stdout, as with Console.
	StopOn []string
	// StopGrace is how long the run goes on after a StopOn match before it
	// is stopped, so that what the guest prints after the matched string
	// (a kernel panic's reason and call trace) reaches the console log.
	StopGrace time.Duration

	// Timeout bounds the run; zero means only ctx does. Hitting it is not an
	// error: Result.TimedOut says so.
	Timeout time.Duration
	// ExtraArgs are appended to the command line as they are.
	ExtraArgs []string
}

// Forward is one TCP port forwarded from the host to the guest.
type Forward struct {
	// HostAddr is the host address QEMU listens on; "" means 127.0.0.1,
	// so nothing outside this machine reaches the guest.
	HostAddr  string
	HostPort  int
	GuestPort int
}

// hostfwd is the forward as a -nic hostfwd= value.
func (f Forward) hostfwd() (string, error) {
	addr := f.HostAddr
	if addr == "" {
		addr = "127.0.0.1"
	}
	if f.HostPort <= 0 || f.HostPort > 65535 || f.GuestPort <= 0 || f.GuestPort > 65535 {
		return "", fmt.Errorf("qemu: port forward %s:%d to guest port %d: ports must be 1 to 65535", addr, f.HostPort, f.GuestPort)
	}
	return fmt.Sprintf("tcp:%s:%d-:%d", addr, f.HostPort, f.GuestPort), nil
}

// FreeLoopbackPort returns a TCP port on 127.0.0.1 that nothing listens on
// now, for a Forward's HostPort. Another program may take it before QEMU
// does; QEMU then fails to start, saying so.
func FreeLoopbackPort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("finding a free port on 127.0.0.1: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Result is how a run ended.
type Result struct {
	Duration time.Duration
	// ExitCode is QEMU's exit status: 0 when the guest powered off or
	// rebooted, (v<<1)|1 when it wrote v to isa-debug-exit (DebugExit), -1
	// when QEMU was killed (timeout, cancellation).
	ExitCode int
	TimedOut bool
	// StoppedOn is the Options.StopOn string the console showed, which
	// ended the run (or the guest ended it itself during StopGrace).
	StoppedOn string
	Cmdline   []string // the argv that ran
	CPUs      int      // the guest's vCPUs
	CPU       string   // the guest's CPU: "host" under KVM, else the TCG level
}

// DebugExitValue returns the value the guest wrote to isa-debug-exit, if
// that is how the run ended.
func (r *Result) DebugExitValue() (int, bool) {
	if r == nil || r.ExitCode <= 1 || r.ExitCode%2 == 0 {
		return 0, false
	}
	return r.ExitCode >> 1, true
}

// withDefaults fills o's zero values; the vCPUs need Accel (DefaultCPUs).
func (o Options) withDefaults() (Options, error) {
	if o.Binary == "" {
		o.Binary = DefaultBinary
	}
	if o.Machine == "" {
		o.Machine = "q35"
	}
	if o.MemoryMiB <= 0 {
		o.MemoryMiB = 1024
	}
	if o.CPUs <= 0 {
		n, err := DefaultCPUs(o.Accel)
		if err != nil {
			return o, err
		}
		o.CPUs = n
	}
	if o.TCGCPU == "" {
		l, err := DefaultTCGCPU()
		if err != nil {
			return o, err
		}
		o.TCGCPU = l
	} else if err := CheckTCGCPU(o.TCGCPU); err != nil {
		return o, err
	}
	return o, nil
}

// cpuName is the guest's CPU as Result reports it.
func (o Options) cpuName() string {
	if o.Accel == "kvm" {
		return "host"
	}
	return string(o.TCGCPU)
}

var diskFormats = []string{"raw", "qcow2", "vmdk", "vpc", "vhdx"}

// Cmdline returns the QEMU argv for o. It has no side effects: it creates no
// files and runs nothing (it reads firmware descriptors when UEFI firmware
// must be found), so Accel must be set and, for UEFI, VarsFile too.
func (o Options) Cmdline() ([]string, error) {
	o, err := o.withDefaults()
	if err != nil {
		return nil, err
	}
	var cpu string
	switch o.Accel {
	case "kvm":
		cpu = "host"
	case "tcg":
		cpu = tcgCPUs[o.TCGCPU] // see tcgCPUs for the levels and why
	case "":
		return nil, errors.New("qemu: no accelerator: set Options.Accel (see DetectAccel) or leave it to Run")
	default:
		return nil, fmt.Errorf("qemu: unknown accelerator %q (want kvm or tcg)", o.Accel)
	}
	machine := o.Machine + ",accel=" + o.Accel

	var fw *UEFIFirmware
	switch o.Firmware {
	case BIOS:
	case UEFI:
		fw = o.UEFI
		if fw == nil {
			var err error
			if fw, err = FindUEFI(FirmwareQuery{Machine: firmwareMachine(o.Machine)}); err != nil {
				return nil, err
			}
		}
		if o.VarsFile == "" {
			return nil, errors.New("qemu: UEFI needs Options.VarsFile, the guest's writable copy of the NVRAM template (Run makes one if it is empty)")
		}
		if fw.RequiresSMM() {
			machine += ",smm=on"
		}
	default:
		return nil, fmt.Errorf("qemu: unknown firmware %v", o.Firmware)
	}

	args := []string{o.Binary,
		"-nodefaults", "-display", "none", "-no-reboot",
		"-machine", machine,
		"-cpu", cpu,
		"-m", strconv.Itoa(o.MemoryMiB),
		"-smp", strconv.Itoa(o.CPUs),
		"-device", "virtio-rng-pci",
	}
	if fw != nil {
		if fw.RequiresSMM() {
			args = append(args, "-global", "driver=cfi.pflash01,property=secure,value=on")
		}
		args = append(args,
			"-drive", "if=pflash,format="+fw.CodeFormat+",unit=0,file="+optEscape(fw.Code)+",readonly=on",
			"-drive", "if=pflash,format="+fw.VarsFormat+",unit=1,file="+optEscape(o.VarsFile))
	}

	scsi := false
	for i, d := range o.Disks {
		if d.Path == "" {
			return nil, fmt.Errorf("qemu: disk %d has no path", i)
		}
		if !slices.Contains(diskFormats, d.Format) {
			return nil, fmt.Errorf("qemu: disk %s: format %q is not one of raw, qcow2, vmdk, vpc (VHD), vhdx", d.Path, d.Format)
		}
		drive := "file=" + optEscape(d.Path) + ",format=" + d.Format
		var flags string
		if d.ReadOnly {
			flags += ",readonly=on"
		}
		if d.Snapshot {
			flags += ",snapshot=on"
		}
		id := "disk" + strconv.Itoa(i)
		switch d.Interface {
		case "", "virtio":
			args = append(args, "-drive", drive+",if=virtio"+flags)
		case "ide":
			args = append(args, "-drive", drive+",if=ide"+flags)
		case "nvme":
			args = append(args, "-drive", drive+",if=none,id="+id+flags,
				"-device", "nvme,drive="+id+",serial=kiln-"+id)
		case "scsi":
			if !scsi {
				args = append(args, "-device", "virtio-scsi-pci,id=scsi0")
				scsi = true
			}
			args = append(args, "-drive", drive+",if=none,id="+id+flags,
				"-device", "scsi-hd,drive="+id+",bus=scsi0.0")
		default:
			return nil, fmt.Errorf("qemu: disk %s: interface %q is not one of virtio, ide, nvme, scsi", d.Path, d.Interface)
		}
	}

	if len(o.ExtraSerials) > 3 {
		return nil, fmt.Errorf("qemu: %d extra serial ports, but x86 has only ttyS1 to ttyS3", len(o.ExtraSerials))
	}
	var console string
	switch {
	case o.Console != nil || len(o.StopOn) > 0:
		console = "stdio,id=ttyS0"
		if o.Stdin != nil {
			console += ",mux=on,signal=off"
		}
	case o.ConsoleLog != "":
		console = "file,id=ttyS0,path=" + optEscape(o.ConsoleLog)
	default:
		console = "null,id=ttyS0"
	}
	args = append(args, "-chardev", console, "-serial", "chardev:ttyS0")
	if o.Console != nil && o.Stdin != nil {
		args = append(args, "-mon", "chardev=ttyS0,mode=readline")
	}
	for i, p := range o.ExtraSerials {
		if p == "" {
			return nil, fmt.Errorf("qemu: extra serial port %d (ttyS%d) has no file", i, i+1)
		}
		id := "ttyS" + strconv.Itoa(i+1)
		args = append(args, "-chardev", "file,id="+id+",path="+optEscape(p), "-serial", "chardev:"+id)
	}

	if len(o.Forwards) > 0 && !o.Network {
		return nil, errors.New("qemu: port forwards need Options.Network")
	}
	if o.Network {
		nic := "user,model=virtio-net-pci"
		for _, f := range o.Forwards {
			fwd, err := f.hostfwd()
			if err != nil {
				return nil, err
			}
			nic += ",hostfwd=" + fwd
		}
		args = append(args, "-nic", nic)
	}
	if o.DebugExit {
		args = append(args, "-device", fmt.Sprintf("isa-debug-exit,iobase=%#x,iosize=0x04", DebugExitPort))
	}
	if o.TPM != nil {
		tpm, err := o.TPM.args()
		if err != nil {
			return nil, err
		}
		args = append(args, tpm...)
	}
	return append(args, o.ExtraArgs...), nil
}

// optEscape escapes a value for QEMU's comma-separated option syntax.
func optEscape(s string) string { return strings.ReplaceAll(s, ",", ",,") }

// firmwareMachine maps a -machine value to the machine glob descriptors use.
func firmwareMachine(machine string) string {
	name, _, _ := strings.Cut(machine, ",")
	switch name {
	case "q35":
		return "pc-q35-*"
	case "pc":
		return "pc-i440fx-*"
	}
	return name
}

var errTimedOut = errors.New("qemu: timeout")

// Run boots o and waits until QEMU exits, o.Timeout passes or ctx is done,
// killing QEMU's process group in the last two cases.
//
// It returns an error, carrying the quoted command line and the tail of
// QEMU's stderr, when QEMU cannot start or fails, when ctx is done, and at
// once when KVM reports an internal error (QEMU would otherwise sit paused
// until the timeout). A guest that powers off or reboots (status 0), a guest
// answer through DebugExit, and a timeout are not errors; the Result tells
// them apart. The Result is returned, with the command line, whenever QEMU
// ran.
func Run(ctx context.Context, o Options) (*Result, error) {
	if o.Accel == "" {
		o.Accel = DetectAccel(ctx)
	}
	o, err := o.withDefaults()
	if err != nil {
		return nil, err
	}
	// scratch holds what the caller left to Run: the NVRAM copy, the TPM's
	// socket (short: a UNIX socket's path is limited to 107 bytes). It is a
	// live directory (internal/livedir): what a killed Run left is swept by
	// the next one.
	var scratch *livedir.Dir
	defer func() {
		if scratch != nil {
			_ = scratch.Remove()
		}
	}()
	scratchFile := func(name string) (string, error) {
		if scratch == nil {
			_, _ = livedir.SweepDead(os.TempDir(), scratchPrefix)
			var err error
			if scratch, err = livedir.Create(os.TempDir(), scratchPrefix, 0o700); err != nil {
				return "", err
			}
		}
		return filepath.Join(scratch.Path, name), nil
	}
	if o.Firmware == UEFI {
		if o.UEFI == nil {
			fw, err := FindUEFI(FirmwareQuery{Machine: firmwareMachine(o.Machine)})
			if err != nil {
				return nil, err
			}
			o.UEFI = fw
		}
		if o.VarsFile == "" {
			var err error
			if o.VarsFile, err = scratchFile("efivars.fd"); err != nil {
				return nil, err
			}
		}
		if _, err := os.Stat(o.VarsFile); errors.Is(err, fs.ErrNotExist) {
			if err := copyFile(o.VarsFile, o.UEFI.VarsTemplate); err != nil {
				return nil, fmt.Errorf("qemu: copying the NVRAM template: %w", err)
			}
		} else if err != nil {
			return nil, fmt.Errorf("qemu: NVRAM file: %w", err)
		}
	}
	if o.TPM != nil {
		tpm := *o.TPM
		if tpm.Socket == "" {
			var err error
			if tpm.Socket, err = scratchFile("swtpm.sock"); err != nil {
				return nil, err
			}
		}
		o.TPM = &tpm
	}
	args, err := o.Cmdline()
	if err != nil {
		return nil, err
	}
	if o.TPM != nil {
		swtpm, err := startTPM(ctx, *o.TPM)
		if err != nil {
			return nil, err
		}
		// After QEMU: swtpm normally ended itself (--terminate) already.
		defer func() { _ = swtpm.Stop(2 * time.Second) }()
	}

	res := &Result{Cmdline: args, ExitCode: -1, CPUs: o.CPUs, CPU: o.cpuName()}
	base, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	// seen is the StopOn string the console showed: the run reports it
	// also when the guest ends by itself during StopGrace.
	var seen atomic.Pointer[string]
	if len(o.StopOn) > 0 {
		w := &consoleWatch{patterns: o.StopOn, onMatch: func(s string) {
			seen.Store(&s)
			if o.StopGrace <= 0 {
				cancel(&stopped{s})
				return
			}
			time.AfterFunc(o.StopGrace, func() { cancel(&stopped{s}) })
		}}
		if o.Console != nil {
			o.Console = io.MultiWriter(o.Console, w)
		} else {
			o.Console = w
		}
	}
	if o.ConsoleLog != "" && o.Console != nil { // a stdio chardev: Run writes the log
		f, err := os.Create(o.ConsoleLog)
		if err != nil {
			return nil, fmt.Errorf("qemu: console log: %w", err)
		}
		defer f.Close()
		o.Console = io.MultiWriter(f, o.Console)
	}
	rctx := base
	if o.Timeout > 0 {
		var stop context.CancelFunc
		rctx, stop = context.WithTimeoutCause(base, o.Timeout, errTimedOut)
		defer stop()
	}
	watch := &stderrWatch{onFatal: func() { cancel(errKVMInternal) }}
	start := time.Now()
	err = run.Run(rctx, run.Cmd{Args: args, Stdin: o.Stdin, Stdout: o.Console, Stderr: watch})
	res.Duration = time.Since(start)
	if p := seen.Load(); p != nil {
		res.StoppedOn = *p
	}
	if err == nil {
		res.ExitCode = 0
		return res, nil
	}
	var re *run.Error
	if !errors.As(err, &re) {
		return res, fmt.Errorf("qemu: %w", err)
	}
	var stop *stopped
	switch {
	case ctx.Err() != nil:
		return res, fmt.Errorf("qemu: %w", err)
	case errors.As(context.Cause(base), &stop):
		return res, nil
	case context.Cause(base) == errKVMInternal:
		return res, fmt.Errorf("qemu: KVM cannot run this guest on this host (%s; set %s=tcg to use TCG): %w",
			strings.Join(watch.fatalLines(), "; "), AccelEnv, err)
	case context.Cause(rctx) == errTimedOut:
		res.TimedOut = true
		return res, nil
	}
	res.ExitCode = re.ExitCode
	if _, ok := res.DebugExitValue(); ok && o.DebugExit {
		return res, nil
	}
	return res, fmt.Errorf("qemu: %w", err)
}

func copyFile(dst, src string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		os.Remove(dst)
		return err
	}
	return out.Close()
}

// scratchPrefix names Run's scratch directories in the temporary directory.
const scratchPrefix = "kiln-qemu-"

// stopped is the cause of a run ended by Options.StopOn.
type stopped struct{ pattern string }

func (s *stopped) Error() string { return "qemu: stopped on " + strconv.Quote(s.pattern) }

// consoleWatch looks for patterns in the console stream, also across
// writes, and reports the first one seen, once.
type consoleWatch struct {
	patterns []string
	onMatch  func(string)
	tail     []byte
	done     bool
}

func (w *consoleWatch) Write(p []byte) (int, error) {
	if w.done {
		return len(p), nil
	}
	w.tail = append(w.tail, p...)
	for _, pat := range w.patterns {
		if strings.Contains(string(w.tail), pat) {
			w.done = true
			w.onMatch(pat)
			return len(p), nil
		}
	}
	// Keep what a pattern split across writes needs.
	keep := 0
	for _, pat := range w.patterns {
		keep = max(keep, len(pat))
	}
	if len(w.tail) > keep {
		w.tail = append([]byte(nil), w.tail[len(w.tail)-keep:]...)
	}
	return len(p), nil
}
