package qemu

import (
	"encoding/binary"
	"os"
	"os/exec"
	"testing"
)

// Tests that boot QEMU skip without it (and with -short, as `make test-unit`
// promises no QEMU), unless KILN_REQUIRE_QEMU=1, where a missing QEMU or
// OVMF fails them. This mirrors internal/testutil.Require.

func strict() bool { return os.Getenv("KILN_REQUIRE_QEMU") == "1" }

func missing(t *testing.T, msg string) {
	t.Helper()
	if strict() {
		t.Fatal(msg + " (KILN_REQUIRE_QEMU=1)")
	}
	t.Skip(msg)
}

func requireQEMU(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("boots QEMU; skipped with -short")
	}
	if _, err := exec.LookPath(DefaultBinary); err != nil {
		missing(t, DefaultBinary+" is not installed (apt-get install qemu-system-x86)")
	}
}

func requireOVMF(t *testing.T) *UEFIFirmware {
	t.Helper()
	fw, err := FindUEFI(FirmwareQuery{})
	if err != nil {
		missing(t, err.Error())
	}
	return fw
}

// noProcessWith fails if any process's command line contains marker.
func noProcessWith(t *testing.T, marker string) {
	t.Helper()
	out, err := exec.Command("pgrep", "-a", "-f", marker).CombinedOutput()
	if err == nil {
		t.Fatalf("processes left behind:\n%s", out)
	}
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Fatalf("pgrep: %v: %s", err, out)
	}
}

// Hand-assembled 16-bit boot-sector programs (loaded at 0000:7c00).

// serialProgram prints msg on COM1 (port 0x3f8) and writes exit to the
// isa-debug-exit port.
func serialProgram(msg string, exit byte) []byte {
	const msgOffset = 27
	addr := make([]byte, 2)
	binary.LittleEndian.PutUint16(addr, 0x7c00+msgOffset)
	code := []byte{
		0xfa,       // 0  cli
		0xfc,       // 1  cld
		0x31, 0xc0, // 2  xor ax, ax
		0x8e, 0xd8, // 4  mov ds, ax
		0xbe, addr[0], addr[1], // 6  mov si, msg
		0xba, 0xf8, 0x03, // 9  mov dx, 0x3f8
		0xac,       // 12 next: lodsb
		0x84, 0xc0, // 13 test al, al
		0x74, 0x03, // 15 jz done
		0xee,       // 17 out dx, al
		0xeb, 0xf8, // 18 jmp next
		0xb0, exit, // 20 done: mov al, exit
		0xe6, 0xf4, // 22 out 0xf4, al
		0xf4,       // 24 hlt
		0xeb, 0xfd, // 25 jmp hlt
	}
	if len(code) != msgOffset {
		panic("serialProgram: code length changed")
	}
	return append(append(code, msg...), 0)
}

// resetProgram asks the q35 reset control register (port 0xcf9) for a
// reset, which -no-reboot turns into QEMU exiting with status 0.
var resetProgram = []byte{
	0xfa,             // cli
	0xba, 0xf9, 0x0c, // mov dx, 0xcf9
	0xb0, 0x06, //       mov al, 6 (system reset | reset CPU)
	0xee,       //       out dx, al
	0xf4,       //       hlt
	0xeb, 0xfd, //       jmp hlt
}

// hangProgram halts forever.
var hangProgram = []byte{
	0xfa,       // cli
	0xf4,       // hlt
	0xeb, 0xfd, // jmp hlt
}
