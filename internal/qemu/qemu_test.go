package qemu

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kiln-build/kiln/internal/run"
)

func TestCmdlineBIOS(t *testing.T) {
	withCores(t, 2) // one vCPU under TCG (DefaultCPUs)
	t.Setenv(CPUsEnv, "")
	t.Setenv(TCGCPUEnv, "")
	argv, err := Options{
		Accel:        "tcg",
		Disks:        []Disk{{Path: "/img/test.raw", Format: "raw"}},
		ConsoleLog:   "/out/serial.log",
		ExtraSerials: []string{"/out/results.log"},
	}.Cmdline()
	require.NoError(t, err)
	require.Equal(t, []string{"qemu-system-x86_64",
		"-nodefaults", "-display", "none", "-no-reboot",
		"-machine", "q35,accel=tcg",
		"-cpu", "qemu64,svm=off,+ssse3,+sse4.1,+sse4.2,+popcnt,+aes,+pclmulqdq",
		"-m", "1024",
		"-smp", "1",
		"-device", "virtio-rng-pci",
		"-drive", "file=/img/test.raw,format=raw,if=virtio",
		"-chardev", "file,id=ttyS0,path=/out/serial.log", "-serial", "chardev:ttyS0",
		"-chardev", "file,id=ttyS1,path=/out/results.log", "-serial", "chardev:ttyS1",
	}, argv)
}

func TestCmdlineUEFI(t *testing.T) {
	argv, err := Options{
		Binary:    "/opt/qemu/bin/qemu-system-x86_64",
		Accel:     "kvm",
		MemoryMiB: 2048,
		CPUs:      4,
		Firmware:  UEFI,
		UEFI: &UEFIFirmware{
			Code: "/fw/OVMF_CODE.fd", CodeFormat: "raw",
			VarsTemplate: "/fw/OVMF_VARS.fd", VarsFormat: "raw",
		},
		VarsFile: "/work/vars.fd",
		Disks: []Disk{
			{Path: "/img/root.qcow2", Format: "qcow2", Snapshot: true},
			{Path: "/img/data.vmdk", Format: "vmdk", Interface: "ide", ReadOnly: true},
			{Path: "/img/fast.raw", Format: "raw", Interface: "nvme"},
			{Path: "/img/a.vhdx", Format: "vhdx", Interface: "scsi"},
			{Path: "/img/b.vhd", Format: "vpc", Interface: "scsi", ReadOnly: true, Snapshot: true},
		},
		ConsoleLog:   "/out/serial.log",
		ExtraSerials: []string{"/out/results.log", "/out/debug.log"},
		Network:      true,
		DebugExit:    true,
		ExtraArgs:    []string{"-boot", "menu=off"},
	}.Cmdline()
	require.NoError(t, err)
	require.Equal(t, []string{"/opt/qemu/bin/qemu-system-x86_64",
		"-nodefaults", "-display", "none", "-no-reboot",
		"-machine", "q35,accel=kvm",
		"-cpu", "host",
		"-m", "2048",
		"-smp", "4",
		"-device", "virtio-rng-pci",
		"-drive", "if=pflash,format=raw,unit=0,file=/fw/OVMF_CODE.fd,readonly=on",
		"-drive", "if=pflash,format=raw,unit=1,file=/work/vars.fd",
		"-drive", "file=/img/root.qcow2,format=qcow2,if=virtio,snapshot=on",
		"-drive", "file=/img/data.vmdk,format=vmdk,if=ide,readonly=on",
		"-drive", "file=/img/fast.raw,format=raw,if=none,id=disk2", "-device", "nvme,drive=disk2,serial=kiln-disk2",
		"-device", "virtio-scsi-pci,id=scsi0",
		"-drive", "file=/img/a.vhdx,format=vhdx,if=none,id=disk3", "-device", "scsi-hd,drive=disk3,bus=scsi0.0",
		"-drive", "file=/img/b.vhd,format=vpc,if=none,id=disk4,readonly=on,snapshot=on", "-device", "scsi-hd,drive=disk4,bus=scsi0.0",
		"-chardev", "file,id=ttyS0,path=/out/serial.log", "-serial", "chardev:ttyS0",
		"-chardev", "file,id=ttyS1,path=/out/results.log", "-serial", "chardev:ttyS1",
		"-chardev", "file,id=ttyS2,path=/out/debug.log", "-serial", "chardev:ttyS2",
		"-nic", "user,model=virtio-net-pci",
		"-device", "isa-debug-exit,iobase=0xf4,iosize=0x04",
		"-boot", "menu=off",
	}, argv)
}

func TestCmdlineSecureBootFirmwareGetsSMM(t *testing.T) {
	argv, err := Options{
		Accel:    "tcg",
		Firmware: UEFI,
		UEFI: &UEFIFirmware{Code: "/fw/CODE.secboot.fd", CodeFormat: "raw", VarsTemplate: "/fw/VARS.ms.fd", VarsFormat: "raw",
			Features: []string{"enrolled-keys", "requires-smm", "secure-boot"}},
		VarsFile: "/work/vars.fd",
	}.Cmdline()
	require.NoError(t, err)
	s := strings.Join(argv, " ")
	require.Contains(t, s, " -machine q35,accel=tcg,smm=on ")
	require.Contains(t, s, " -global driver=cfi.pflash01,property=secure,value=on -drive if=pflash,format=raw,unit=0,file=/fw/CODE.secboot.fd,readonly=on ")
}

func TestCmdlineConsole(t *testing.T) {
	chardev := func(o Options) string {
		t.Helper()
		o.Accel = "tcg"
		argv, err := o.Cmdline()
		require.NoError(t, err)
		for i, a := range argv {
			if a == "-chardev" {
				return argv[i+1]
			}
		}
		t.Fatal("no -chardev")
		return ""
	}
	var live bytes.Buffer
	// With a live console, Run writes the log from QEMU's stdout itself.
	require.Equal(t, "stdio,id=ttyS0", chardev(Options{Console: &live, ConsoleLog: "/out/serial.log"}))
	require.Equal(t, "stdio,id=ttyS0", chardev(Options{Console: &live}))
	require.Equal(t, "null,id=ttyS0", chardev(Options{}))
	interactive := Options{Console: &live, Stdin: strings.NewReader(""), ConsoleLog: "/out/serial.log", Accel: "tcg"}
	require.Equal(t, "stdio,id=ttyS0,mux=on,signal=off", chardev(interactive))
	argv, err := interactive.Cmdline()
	require.NoError(t, err)
	require.Contains(t, strings.Join(argv, " "), " -serial chardev:ttyS0 -mon chardev=ttyS0,mode=readline")
}

func TestCmdlineEscapesCommas(t *testing.T) {
	argv, err := Options{Accel: "tcg", Disks: []Disk{{Path: "/a,b/disk.raw", Format: "raw"}}, ConsoleLog: "/out,1/serial.log"}.Cmdline()
	require.NoError(t, err)
	require.Contains(t, argv, "file=/a,,b/disk.raw,format=raw,if=virtio")
	require.Contains(t, argv, "file,id=ttyS0,path=/out,,1/serial.log")
}

func TestCmdlineErrors(t *testing.T) {
	fw := &UEFIFirmware{Code: "/c", CodeFormat: "raw", VarsTemplate: "/v", VarsFormat: "raw"}
	for _, tc := range []struct {
		name string
		o    Options
		want string
	}{
		{"no accel", Options{}, "set Options.Accel"},
		{"bad accel", Options{Accel: "hvf"}, `unknown accelerator "hvf"`},
		{"no vars file", Options{Accel: "tcg", Firmware: UEFI, UEFI: fw}, "UEFI needs Options.VarsFile"},
		{"bad firmware", Options{Accel: "tcg", Firmware: Firmware(7)}, "unknown firmware Firmware(7)"},
		{"no format", Options{Accel: "tcg", Disks: []Disk{{Path: "/d"}}}, `format "" is not one of`},
		{"vhd is vpc", Options{Accel: "tcg", Disks: []Disk{{Path: "/d", Format: "vhd"}}}, "vpc (VHD)"},
		{"no path", Options{Accel: "tcg", Disks: []Disk{{Format: "raw"}}}, "disk 0 has no path"},
		{"bad interface", Options{Accel: "tcg", Disks: []Disk{{Path: "/d", Format: "raw", Interface: "floppy"}}}, `interface "floppy"`},
		{"too many serials", Options{Accel: "tcg", ExtraSerials: []string{"/1", "/2", "/3", "/4"}}, "only ttyS1 to ttyS3"},
		{"empty serial", Options{Accel: "tcg", ExtraSerials: []string{""}}, "ttyS1) has no file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.o.Cmdline()
			require.ErrorContains(t, err, tc.want)
		})
	}
}

func TestCmdlineHasNoSideEffects(t *testing.T) {
	dir := t.TempDir()
	o := Options{
		Accel:      "tcg",
		Firmware:   UEFI,
		UEFI:       &UEFIFirmware{Code: "/c", CodeFormat: "raw", VarsTemplate: "/v", VarsFormat: "raw"},
		VarsFile:   filepath.Join(dir, "vars.fd"),
		Disks:      []Disk{{Path: filepath.Join(dir, "disk.raw"), Format: "raw"}},
		ConsoleLog: filepath.Join(dir, "serial.log"), ExtraSerials: []string{filepath.Join(dir, "results.log")},
	}
	_, err := o.Cmdline()
	require.NoError(t, err)
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.Empty(t, entries)
}

func TestResultDebugExitValue(t *testing.T) {
	for code, want := range map[int]int{67: 0x21, 85: 0x2a, 3: 1} {
		v, ok := (&Result{ExitCode: code}).DebugExitValue()
		require.True(t, ok)
		require.Equal(t, want, v)
	}
	for _, code := range []int{-1, 0, 1, 2} {
		_, ok := (&Result{ExitCode: code}).DebugExitValue()
		require.False(t, ok)
	}
}

// bootDisk writes a boot-sector disk running code to a temporary directory.
func bootDisk(t *testing.T, code []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "boot.raw")
	require.NoError(t, writeBootDisk(p, code))
	return p
}

// TestRunSeaBIOSBootSector boots a boot sector that prints on COM1 and
// answers through isa-debug-exit.
func TestRunSeaBIOSBootSector(t *testing.T) {
	requireQEMU(t)
	ctx := context.Background()
	accel, reason := DetectAccelReason(ctx)
	t.Logf("accelerator %s: %s", accel, reason)
	log := filepath.Join(t.TempDir(), "serial.log")
	var live bytes.Buffer
	res, err := Run(ctx, Options{
		Accel:      accel,
		MemoryMiB:  128,
		Disks:      []Disk{{Path: bootDisk(t, serialProgram("hello from kiln\r\n", 0x21)), Format: "raw"}},
		ConsoleLog: log,
		Console:    &live,
		DebugExit:  true,
		Timeout:    30 * time.Second,
	})
	require.NoError(t, err)
	t.Logf("SeaBIOS boot to isa-debug-exit: %s", res.Duration.Round(time.Millisecond))
	require.False(t, res.TimedOut)
	require.Equal(t, 0x21<<1|1, res.ExitCode)
	v, ok := res.DebugExitValue()
	require.True(t, ok)
	require.Equal(t, 0x21, v)
	data, err := os.ReadFile(log)
	require.NoError(t, err)
	require.Contains(t, string(data), "hello from kiln\r\n")
	require.Contains(t, live.String(), "hello from kiln\r\n")
	require.Equal(t, DefaultBinary, res.Cmdline[0])
}

// TestRunGuestResetIsSuccess: with -no-reboot, a guest reboot (or power-off)
// ends the run with status 0 and no error, DebugExit or not.
func TestRunGuestResetIsSuccess(t *testing.T) {
	requireQEMU(t)
	ctx := context.Background()
	res, err := Run(ctx, Options{
		Accel:     DetectAccel(ctx),
		MemoryMiB: 128,
		Disks:     []Disk{{Path: bootDisk(t, resetProgram), Format: "raw"}},
		Timeout:   30 * time.Second,
	})
	require.NoError(t, err)
	require.Equal(t, 0, res.ExitCode)
	require.False(t, res.TimedOut)
}

func TestRunFailureQuotesCommandAndStderr(t *testing.T) {
	requireQEMU(t)
	missingDisk := filepath.Join(t.TempDir(), "no such dir", "disk.raw")
	res, err := Run(context.Background(), Options{
		Accel:     "tcg",
		Disks:     []Disk{{Path: missingDisk, Format: "raw"}},
		DebugExit: true, // status 1 stays a failure even so
		Timeout:   30 * time.Second,
	})
	require.Error(t, err)
	require.Equal(t, 1, res.ExitCode)
	require.Contains(t, err.Error(), run.Quote(res.Cmdline))
	require.Contains(t, err.Error(), "'file="+missingDisk+",format=raw,if=virtio'")
	require.Contains(t, err.Error(), "No such file or directory")
	var re *run.Error
	require.True(t, errors.As(err, &re))
}

func TestRunCancelKillsQEMU(t *testing.T) {
	requireQEMU(t)
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	marker := filepath.Join(t.TempDir(), "cancel-marker.log")
	start := time.Now()
	res, err := Run(ctx, Options{
		Accel:      "tcg",
		MemoryMiB:  128,
		Disks:      []Disk{{Path: bootDisk(t, hangProgram), Format: "raw"}},
		ConsoleLog: marker,
		Timeout:    time.Minute,
	})
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.Less(t, time.Since(start), 10*time.Second)
	require.False(t, res.TimedOut)
	require.Equal(t, -1, res.ExitCode)
	require.Contains(t, err.Error(), run.Quote(res.Cmdline))
	noProcessWith(t, marker)
}

// TestRunOVMFTimesOut boots OVMF with no disk: the firmware announces its
// boot manager on the serial console and then waits in the UEFI shell until
// Run's timeout kills it. The timeout leaves OVMF time to get there on a
// loaded machine (it takes about 6 s on an idle one under TCG, and CI runs
// this beside the e2e boots).
func TestRunOVMFTimesOut(t *testing.T) {
	requireQEMU(t)
	fw := requireOVMF(t)
	ctx := context.Background()
	accel := DetectAccel(ctx)
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp) // where Run puts its NVRAM copy
	log := filepath.Join(t.TempDir(), "ovmf-serial.log")
	res, err := Run(ctx, Options{
		Accel:      accel,
		Firmware:   UEFI,
		ConsoleLog: log,
		Timeout:    45 * time.Second,
	})
	require.NoError(t, err)
	t.Logf("OVMF (%s) under %s ran %s", fw.Code, accel, res.Duration.Round(time.Millisecond))
	require.True(t, res.TimedOut)
	require.Equal(t, -1, res.ExitCode)
	data, err := os.ReadFile(log)
	require.NoError(t, err)
	require.Contains(t, string(data), "BdsDxe", "serial console:\n%s", data)
	require.Contains(t, strings.Join(res.Cmdline, " "), "if=pflash,format="+fw.CodeFormat+",unit=0,file="+fw.Code+",readonly=on")
	noProcessWith(t, log)
	left, err := os.ReadDir(tmp)
	require.NoError(t, err)
	require.Empty(t, left, "Run left its temporary NVRAM directory behind")
}

// TestRunStopsAtKVMInternalError runs only where the KVM probe found KVM
// broken in that way (as on hosts whose nested KVM cannot emulate x87 from
// flash): forcing KVM with OVMF must fail at once, not sit out the timeout.
func TestRunStopsAtKVMInternalError(t *testing.T) {
	requireQEMU(t)
	requireOVMF(t)
	t.Setenv(AccelEnv, "")
	if _, reason := DetectAccelReason(context.Background()); !strings.Contains(reason, "KVM internal error") {
		t.Skip("KVM has no internal error here: " + reason)
	}
	start := time.Now()
	res, err := Run(context.Background(), Options{Accel: "kvm", Firmware: UEFI, Timeout: time.Minute})
	require.ErrorContains(t, err, "KILN_ACCEL=tcg")
	require.ErrorContains(t, err, "KVM internal error")
	require.False(t, res.TimedOut)
	require.Less(t, time.Since(start), 20*time.Second)
}

func TestCmdlineForwards(t *testing.T) {
	o := Options{Accel: "tcg", Network: true, Forwards: []Forward{{HostPort: 2222, GuestPort: 22}, {HostAddr: "::1", HostPort: 8080, GuestPort: 80}}}
	argv, err := o.Cmdline()
	require.NoError(t, err)
	require.Contains(t, strings.Join(argv, " "), "-nic user,model=virtio-net-pci,hostfwd=tcp:127.0.0.1:2222-:22,hostfwd=tcp:::1:8080-:80")

	o.Network = false
	_, err = o.Cmdline()
	require.ErrorContains(t, err, "need Options.Network")
	o = Options{Accel: "tcg", Network: true, Forwards: []Forward{{HostPort: 0, GuestPort: 22}}}
	_, err = o.Cmdline()
	require.ErrorContains(t, err, "ports must be 1 to 65535")
}

// A forward listens on the loopback address only, for as long as QEMU runs.
func TestRunForwardListensOnLoopback(t *testing.T) {
	requireQEMU(t)
	port, err := FreeLoopbackPort()
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := Run(ctx, Options{Accel: "tcg", MemoryMiB: 128, Network: true,
			Disks:    []Disk{{Path: bootDisk(t, hangProgram), Format: "raw"}},
			Forwards: []Forward{{HostPort: port, GuestPort: 22}}, Timeout: time.Minute})
		done <- err
	}()
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	var conn net.Conn
	require.Eventually(t, func() bool {
		conn, err = net.Dial("tcp", addr)
		return err == nil
	}, 30*time.Second, 100*time.Millisecond, "QEMU listens on %s", addr)
	conn.Close()
	// Not on the machine's other addresses.
	ifaces, _ := net.InterfaceAddrs()
	for _, a := range ifaces {
		ip, _, _ := net.ParseCIDR(a.String())
		if ip == nil || ip.IsLoopback() || ip.To4() == nil {
			continue
		}
		c, err := net.DialTimeout("tcp", net.JoinHostPort(ip.String(), strconv.Itoa(port)), time.Second)
		if err == nil {
			c.Close()
			t.Fatalf("the forward answers on %s, not only on the loopback address", ip)
		}
	}
	cancel()
	<-done
	require.Eventually(t, func() bool {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
		}
		return err != nil
	}, 10*time.Second, 100*time.Millisecond, "the port is closed once QEMU is gone")
}
