package qemu

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/kiln-build/kiln/internal/run"
)

// The swtpm programs; tests may point them elsewhere.
var (
	SwtpmBinary      = "swtpm"
	SwtpmSetupBinary = "swtpm_setup"
)

// TPM gives the guest a TPM 2.0 emulated by swtpm, on QEMU's tpm-tis
// device, as mkosi and libvirt do.
type TPM struct {
	// StateDir holds the TPM's state: swtpm_setup manufactures it there
	// (SHA-256 PCR bank) when the directory is empty. It belongs to the
	// caller, normally a throwaway work directory.
	StateDir string
	// Socket is swtpm's control socket, which QEMU connects to. Run makes
	// one in a short private temporary directory when it is empty (a UNIX
	// socket's path is limited to 107 bytes); Cmdline needs it set.
	Socket string
}

// tpmArgs are QEMU's arguments for the TPM.
func (t *TPM) args() ([]string, error) {
	if t.Socket == "" {
		return nil, errors.New("qemu: the TPM needs TPM.Socket, swtpm's control socket (Run makes one if it is empty)")
	}
	return []string{
		"-chardev", "socket,id=chrtpm,path=" + optEscape(t.Socket),
		"-tpmdev", "emulator,id=tpm0,chardev=chrtpm",
		"-device", "tpm-tis,tpmdev=tpm0",
	}, nil
}

// SwtpmArgs is the swtpm command line for t (pure; tested). --terminate
// makes swtpm exit when QEMU's connection goes away, whatever ended QEMU.
func SwtpmArgs(t TPM) []string {
	return []string{SwtpmBinary, "socket", "--tpm2",
		"--tpmstate", "dir=" + optEscape(t.StateDir),
		"--ctrl", "type=unixio,path=" + optEscape(t.Socket),
		"--log", "file=" + optEscape(filepath.Join(t.StateDir, "swtpm.log")),
		"--terminate"}
}

// startTPM manufactures the TPM's state if needed and starts swtpm; it
// returns once the control socket exists. swtpm never outlives Kiln: it is
// started through internal/run (own process group, parent-death signal on
// a thread that lives as long as swtpm), and it ends itself when QEMU's
// connection closes. The caller stops it after QEMU has exited.
func startTPM(ctx context.Context, t TPM) (*run.Process, error) {
	if err := os.MkdirAll(t.StateDir, 0o700); err != nil {
		return nil, fmt.Errorf("qemu: TPM state: %w", err)
	}
	if _, err := os.Stat(filepath.Join(t.StateDir, "tpm2-00.permall")); errors.Is(err, fs.ErrNotExist) {
		// --config /dev/null: no EK certificates, so no certificate tool
		// and nothing written outside the state directory.
		if _, err := run.Output(ctx, run.Cmd{Args: []string{SwtpmSetupBinary, "--tpm2", "--tpmstate", t.StateDir,
			"--pcr-banks", "sha256", "--config", "/dev/null"}}); err != nil {
			return nil, fmt.Errorf("qemu: manufacturing the TPM's state: %w", err)
		}
	}
	p, err := run.Start(ctx, run.Cmd{Args: SwtpmArgs(t)})
	if err != nil {
		return nil, fmt.Errorf("qemu: starting swtpm: %w", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := os.Stat(t.Socket); err == nil {
			return p, nil
		}
		select {
		case <-p.Done():
			return nil, fmt.Errorf("qemu: swtpm exited before it listened: %w", p.Wait())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			_ = p.Stop(time.Second)
			return nil, fmt.Errorf("qemu: swtpm did not create %s within 10s", t.Socket)
		}
	}
}
