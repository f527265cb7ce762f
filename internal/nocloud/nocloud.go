// Package nocloud writes cloud-init NoCloud seeds: an ISO 9660 filesystem
// labelled "cidata" that holds user-data and meta-data, which cloud-init's
// NoCloud data source finds on any block device by its label (kiln run and
// kiln test --cloud-init attach one as a read-only disk).
//
// The ISO is written natively with go-diskfs, with Rock Ridge names: a
// plain ISO 9660 (level 1) directory would store user-data as USER_DAT.;1,
// a name cloud-init never looks for. Linux reads Rock Ridge by default, as
// it does the seeds cloud-localds makes with genisoimage -rock.
//
// It does not check user-data beyond its first line (see CheckUserData),
// write network-config or vendor-data, or make a VFAT seed.
package nocloud

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"

	"github.com/diskfs/go-diskfs/backend/file"
	"github.com/diskfs/go-diskfs/filesystem/iso9660"
)

// Label is the volume label the NoCloud data source looks for.
const Label = "cidata"

// Seed is what a NoCloud seed holds.
type Seed struct {
	UserData []byte
	// InstanceID is meta-data's instance-id. cloud-init runs its
	// per-instance modules (write_files, users, ...) once per instance-id,
	// so a new ID makes a guest that already ran cloud-init apply the
	// user-data again. NewInstanceID makes one.
	InstanceID string
	// Hostname, when set, is meta-data's local-hostname.
	Hostname string
}

// NewInstanceID returns a fresh instance-id: "kiln-" and 16 hex digits.
func NewInstanceID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return "kiln-" + hex.EncodeToString(b)
}

// MetaData is the meta-data file of s (YAML).
func (s Seed) MetaData() []byte {
	md := fmt.Sprintf("instance-id: %s\n", s.InstanceID)
	if s.Hostname != "" {
		md += fmt.Sprintf("local-hostname: %s\n", s.Hostname)
	}
	return []byte(md)
}

// userDataStarts are the first-line markers cloud-init acts on; it ignores
// user-data that starts with anything else (the part-handler table of
// cloud-init's user-data processing).
var userDataStarts = []string{
	"#cloud-config", "#!", "#include", "#cloud-boothook", "#part-handler",
	"#upstart-job", "## template: jinja", "Content-Type:", "MIME-Version:",
}

// CheckUserData returns an error when cloud-init would ignore data: it is
// empty, or neither gzip nor starts with a marker cloud-init knows.
func CheckUserData(data []byte) error {
	if len(bytes.TrimSpace(data)) == 0 {
		return fmt.Errorf("the user-data is empty")
	}
	if bytes.HasPrefix(data, []byte{0x1f, 0x8b}) {
		return nil
	}
	for _, s := range userDataStarts {
		if bytes.HasPrefix(data, []byte(s)) {
			return nil
		}
	}
	first, _, _ := bytes.Cut(data, []byte("\n"))
	if len(first) > 40 {
		first = append(first[:40:40], "..."...)
	}
	return fmt.Errorf("cloud-init ignores user-data that starts with %q: start it with #cloud-config (YAML), #! (a script) or a MIME multipart header", first)
}

// Write writes the seed to path (replacing it) as an ISO 9660 image.
func Write(path string, s Seed) error {
	if s.InstanceID == "" {
		return fmt.Errorf("nocloud: the seed needs an instance-id")
	}
	work, err := os.MkdirTemp(filepath.Dir(path), ".nocloud-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	tmp := filepath.Join(work, "seed.iso")
	if err := write(tmp, filepath.Join(work, "tree"), s); err != nil {
		return fmt.Errorf("writing the NoCloud seed %s: %w", path, err)
	}
	return os.Rename(tmp, path)
}

func write(path, workspace string, s Seed) error {
	if err := os.Mkdir(workspace, 0o700); err != nil {
		return err
	}
	// go-diskfs writes the ISO into a file of this size, then trims it.
	size := int64(len(s.UserData)) + 1<<20
	b, err := file.CreateFromPath(path, size)
	if err != nil {
		return err
	}
	defer b.Close()
	fs, err := iso9660.Create(b, size, 0, 2048, workspace)
	if err != nil {
		return err
	}
	for name, data := range map[string][]byte{"user-data": s.UserData, "meta-data": s.MetaData()} {
		f, err := fs.OpenFile("/"+name, os.O_CREATE|os.O_RDWR)
		if err != nil {
			return err
		}
		if _, err := f.Write(data); err != nil {
			return err
		}
		if err := f.Close(); err != nil {
			return err
		}
	}
	if err := fs.Finalize(iso9660.FinalizeOptions{RockRidge: true, VolumeIdentifier: Label}); err != nil {
		return err
	}
	return trim(path)
}

// trim cuts the file to the volume's size, which the primary volume
// descriptor (sector 16) records as a little-endian block count at byte 80.
func trim(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	pvd := make([]byte, 2048)
	if _, err := f.ReadAt(pvd, 16*2048); err != nil {
		return err
	}
	if pvd[0] != 1 || string(pvd[1:6]) != "CD001" {
		return fmt.Errorf("no primary volume descriptor in the ISO written")
	}
	blocks := binary.LittleEndian.Uint32(pvd[80:84])
	block := binary.LittleEndian.Uint16(pvd[128:130])
	return f.Truncate(int64(blocks) * int64(block))
}
