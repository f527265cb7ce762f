package boottest

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/kiln-build/kiln/catalog"
	"github.com/kiln-build/kiln/components"
	"github.com/kiln-build/kiln/disk"
	"github.com/kiln-build/kiln/formats"
	"github.com/kiln-build/kiln/internal/guest"
	"github.com/kiln-build/kiln/internal/parttype"
	"github.com/kiln-build/kiln/internal/qemu"
	"github.com/kiln-build/kiln/internal/semver"
	"github.com/kiln-build/kiln/manifest"
	"github.com/kiln-build/kiln/platform"
)

// Target is an image to boot outside a build (kiln test, kiln run): a disk
// image file of any supported format, or a published artifact.
type Target struct {
	Source        string             // what was asked for: the image file or the artifact directory
	Path          string             // the disk QEMU boots: raw, qcow2, vmdk, vhd or vhdx; never modified
	Name, Version string             // from the manifest, else the file's name and "0.0.0"
	Manifest      *manifest.Manifest // nil for an image that is not a Kiln artifact
	// Firmwares are the firmwares the image boots under: the manifest's
	// boot mode, else what its partitions show (see DetectFirmware).
	Firmwares  []platform.Boot
	RootOffset uint64 // the ext4 root filesystem, for the harness
	Table      string
}

// UsageError is a command-line mistake (exit code 2): a target that does not exist or cannot be resolved.
type UsageError struct{ Err error }

func (e *UsageError) Error() string { return e.Err.Error() }
func (e *UsageError) Unwrap() error { return e.Err }

// OpenTarget resolves arg, which is a disk image file, an artifact directory
// (images/<name>/<version>/<build>) or name@version[/build] in the catalog
// imagesDir (version may be a selector such as 1.x.x; without /build the
// newest build). A compressed raw image (.zst, .xz) is decompressed into
// scratch, which must outlive the Target.
func OpenTarget(ctx context.Context, arg, imagesDir, scratch string) (*Target, error) {
	path := arg
	fi, err := os.Stat(arg)
	if err != nil && strings.Count(arg, "@") == 1 && !strings.HasPrefix(arg, "/") && !strings.HasPrefix(arg, ".") {
		if path, err = resolveCatalog(arg, imagesDir); err != nil {
			return nil, &UsageError{err}
		}
		fi, err = os.Stat(path)
	}
	if err != nil {
		return nil, &UsageError{fmt.Errorf("%s: no such image file or artifact directory", arg)}
	}
	t := &Target{Source: path}
	if fi.IsDir() {
		if path, err = fromArtifact(t, path); err != nil {
			return nil, &UsageError{err}
		}
	} else {
		base := filepath.Base(path)
		for _, ext := range []string{".zst", ".xz", ".raw", ".qcow2", ".vmdk", ".vhd", ".vhdx", ".img"} {
			base = strings.TrimSuffix(base, ext)
		}
		t.Name, t.Version = base, "0.0.0"
	}
	kind, err := formats.Detect(path)
	if err != nil {
		return nil, err
	}
	switch kind {
	case "zstd", "xz":
		raw := filepath.Join(scratch, "decompressed.raw")
		if err := formats.Decompress(ctx, path, raw); err != nil {
			return nil, fmt.Errorf("decompressing %s: %w", path, err)
		}
		path = raw
	case "ova":
		return nil, &UsageError{fmt.Errorf("%s is an OVA; unpack its VMDK disk and give that", path)}
	}
	t.Path = path
	img, err := formats.Open(path)
	if err != nil {
		return nil, &UsageError{err}
	}
	defer img.Close()
	in, err := disk.Inspect(img, img.Size())
	if err != nil {
		return nil, &UsageError{fmt.Errorf("%s: %w", path, err)}
	}
	root, err := in.Root()
	if err != nil {
		return nil, &UsageError{fmt.Errorf("%s: %w; Kiln injects its test harness into the root filesystem", path, err)}
	}
	t.RootOffset, t.Table = root.Start, in.Table
	if len(t.Firmwares) == 0 {
		mbr := make([]byte, 512)
		if _, err := img.ReadAt(mbr, 0); err != nil {
			return nil, err
		}
		t.Firmwares = DetectFirmware(in, mbr)
	}
	return t, nil
}

// fromArtifact fills t from a published build directory and returns the
// output to boot: the raw image if there is one, else the first disk format.
func fromArtifact(t *Target, dir string) (string, error) {
	if _, err := os.Stat(filepath.Join(dir, manifest.FileName)); err != nil {
		return "", fmt.Errorf("%s is a directory but not a Kiln artifact (no manifest.json)", dir)
	}
	m, err := manifest.Read(dir)
	if err != nil {
		return "", err
	}
	t.Manifest, t.Name, t.Version = m, m.Name, m.Version
	t.Firmwares = m.Boot.Firmware.Boots()
	pick := ""
	for _, want := range []string{"raw", "qcow2", "vmdk", "vhd", "vhdx"} {
		for _, o := range m.Outputs {
			if o.Format == want && pick == "" {
				pick = o.File
			}
		}
	}
	if pick == "" {
		return "", fmt.Errorf("%s has no bootable disk output (raw, qcow2, vmdk, vhd or vhdx)", dir)
	}
	return filepath.Join(dir, pick), nil
}

// resolveCatalog finds name@version[/build] in the catalog.
func resolveCatalog(arg, imagesDir string) (string, error) {
	name, rest, _ := strings.Cut(arg, "@")
	ver, buildStr, hasBuild := strings.Cut(rest, "/")
	sel, err := semver.ParseSelector(ver)
	if err != nil {
		return "", fmt.Errorf("%s: %w", arg, err)
	}
	entries, err := os.ReadDir(filepath.Join(imagesDir, name))
	if err != nil {
		return "", fmt.Errorf("%s: no image %q in the catalog %s", arg, name, imagesDir)
	}
	var versions []semver.Version
	for _, e := range entries {
		if v, err := semver.Parse(e.Name()); err == nil && e.IsDir() {
			versions = append(versions, v)
		}
	}
	i := sel.Newest(versions)
	if i < 0 {
		return "", fmt.Errorf("%s: no version of %s in %s matches %s", arg, name, imagesDir, ver)
	}
	vdir := filepath.Join(imagesDir, name, versions[i].String())
	builds, err := catalog.Builds(vdir)
	if err != nil || len(builds) == 0 {
		return "", fmt.Errorf("%s: %s has no published build", arg, vdir)
	}
	if hasBuild {
		n, err := strconv.Atoi(buildStr)
		if err != nil || n < 1 {
			return "", fmt.Errorf("%s: build %q is not a build number", arg, buildStr)
		}
		return filepath.Join(vdir, strconv.Itoa(n)), nil
	}
	newest := builds[0]
	for _, b := range builds {
		newest = max(newest, b)
	}
	return filepath.Join(vdir, strconv.Itoa(newest)), nil
}

// DetectFirmware tells from a disk's partitions which firmwares boot it:
// an EFI system partition means UEFI; a GPT BIOS boot partition, or boot
// code in an MBR disk's first sector, means BIOS; both means a hybrid
// image, tested under each. A disk that shows neither is tried under UEFI
// when it is GPT and under BIOS when it is MBR.
func DetectFirmware(in *disk.Inspected, mbr []byte) []platform.Boot {
	var uefi, bios bool
	for _, p := range in.Partitions {
		if strings.EqualFold(p.TypeGUID, parttype.ESP.GUID) || (in.Table == string(platform.MBR) && p.TypeMBR == parttype.ESP.MBR) {
			uefi = true
		}
		if strings.EqualFold(p.TypeGUID, parttype.BIOS.GUID) {
			bios = true
		}
	}
	if in.Table == string(platform.MBR) && len(mbr) >= 440 && !allZero(mbr[:440]) {
		bios = true
	}
	switch {
	case uefi && bios:
		return platform.Hybrid.Boots()
	case uefi, !bios && in.Table == string(platform.GPT):
		return []platform.Boot{platform.BootUEFI}
	}
	return []platform.Boot{platform.BootBIOS}
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// SmokeRequest is a kiln test run: the base health checks plus extra tests
// on an image built by Kiln or by anything else.
type SmokeRequest struct {
	Target   *Target
	Firmware platform.Boot // "" = every firmware of the target
	Tests    []components.Step
	WorkDir  string // scratch; ConsoleLog files go here unless ConsoleDir is set
	// ConsoleDir, when set, receives serial-<firmware>.log.
	ConsoleDir string
	Log        io.Writer
	Profile    bool    // see Request.Profile
	Devices    Devices // Secure Boot (the UEFI boot) and a TPM
	// UserData, when set, is cloud-init user-data on a NoCloud seed.
	UserData []byte
}

// Smoke boots the target under each firmware with the tests injected into a
// throwaway copy and returns the results; the image file is never changed
// (its sha256 is checked before and after).
func Smoke(ctx context.Context, r SmokeRequest) (*Outcome, error) {
	boots := r.Target.Firmwares
	if r.Firmware != "" {
		boots = []platform.Boot{r.Firmware}
	}
	consoleDir := r.ConsoleDir
	if consoleDir == "" {
		consoleDir = r.WorkDir
	}
	consoles := map[platform.Boot]string{}
	for _, b := range boots {
		consoles[b] = filepath.Join(consoleDir, ConsoleLog(b, 2))
	}
	return Run(ctx, Suite{Image: r.Target.Path, RootOffset: r.Target.RootOffset, Name: r.Target.Name, Version: r.Target.Version,
		Boots: boots, Consoles: consoles, Tests: r.Tests, WorkDir: r.WorkDir, Log: r.Log, Profile: r.Profile, UserData: r.UserData, Devices: r.Devices})
}

// ConsoleLog is the name of a boot's console log among boots of one image:
// serial.log when it is the only boot, serial-<firmware>.log otherwise.
func ConsoleLog(b platform.Boot, boots int) string {
	if boots == 1 {
		return "serial.log"
	}
	return "serial-" + string(b) + ".log"
}

// RunRequest boots a target for a person on the serial console.
type RunRequest struct {
	Target   *Target
	Firmware platform.Boot // "" = the target's first firmware
	Stdin    io.Reader     // keystrokes for ttyS0
	Stdout   io.Writer     // ttyS0
	WorkDir  string        // the UEFI variables, the TPM's state and any throwaway copy live here
	Timeout  time.Duration
	Devices  Devices // Secure Boot (under UEFI) and a TPM
	// SSH, when set, lets its key log in over SSH on a loopback port.
	SSH *SSHAccess
	// UserData, when set, is cloud-init user-data on a NoCloud seed.
	UserData []byte
	Log      io.Writer // the QEMU command line and debugfs's output
	// Attach, when set, is called once the boot disk is ready, just before
	// QEMU starts, and returns Stdin: a terminal goes into raw mode only
	// then, after anything that could fail and print.
	Attach func() (io.Reader, error)
}

// SSHAccess is how kiln run --ssh gets into the guest: AuthorizedKey (an
// OpenSSH public key line) may log in to the guest's sshd, which QEMU
// forwards from 127.0.0.1:HostPort.
type SSHAccess struct {
	AuthorizedKey []byte
	HostPort      int
}

// RunTarget boots the target with its console on Stdin/Stdout until the
// guest powers off or the user quits QEMU (Ctrl-A x). The image file is
// never changed: the disk is attached with snapshot=on, so writes go to a
// throwaway overlay; with SSH or UserData, the guest boots a throwaway
// copy (as kiln test's), into which the key and sshd settings are
// injected, and in which sshd or cloud-init must be found first.
func RunTarget(ctx context.Context, r RunRequest) (*qemu.Result, error) {
	fw := r.Firmware
	if fw == "" {
		fw = r.Target.Firmwares[0]
	}
	if r.Log == nil {
		r.Log = io.Discard
	}
	kind, err := formats.Detect(r.Target.Path)
	if err != nil {
		return nil, err
	}
	disk := qemu.Disk{Path: r.Target.Path, Format: qemuFormat(kind), Snapshot: true}
	if r.SSH != nil || r.UserData != nil {
		path, format, err := prepareBootDisk(ctx, r.Target.Path, r.WorkDir, 0, func(raw string) error {
			if r.UserData != nil {
				if err := guest.CheckCloudInit(ctx, raw, r.Target.RootOffset); err != nil {
					return err
				}
			}
			if r.SSH != nil {
				return guest.InjectSSH(ctx, raw, r.Target.RootOffset, r.SSH.AuthorizedKey, r.Log)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		disk = qemu.Disk{Path: path, Format: format}
	}
	opts := qemu.Options{
		Firmware: qemu.BIOS,
		Disks:    []qemu.Disk{disk},
		Console:  r.Stdout,
		Stdin:    r.Stdin,
		Network:  true,
		Timeout:  r.Timeout,
	}
	if r.SSH != nil {
		opts.Forwards = []qemu.Forward{{HostPort: r.SSH.HostPort, GuestPort: 22}}
	}
	if err := attachUserData(&opts, r.UserData, r.WorkDir); err != nil {
		return nil, err
	}
	if err := r.Devices.forBoot(fw).apply(&opts, fw, r.WorkDir); err != nil {
		return nil, err
	}
	opts.StopOn = nil // a person watches the console and quits when they like
	opts.Accel = qemu.DetectAccel(ctx)
	if cmd, err := opts.Cmdline(); err == nil {
		fmt.Fprintf(r.Log, "+ %s\n", strings.Join(cmd, " "))
	}
	if r.Attach != nil {
		if opts.Stdin, err = r.Attach(); err != nil {
			return nil, err
		}
	}
	return qemu.Run(ctx, opts)
}
