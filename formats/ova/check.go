package ova

// Check: the rules vSphere applies when it deploys an OVA, checked
// without vSphere.

import (
	"bytes"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/kiln-build/kiln/formats/image"
	"github.com/kiln-build/kiln/formats/vmdk"
)

const ovaMaxDescriptor = 16 << 20 // larger .ovf or .mf members are not read

// ovaMember is a file in the archive.
type ovaMember struct {
	name      string
	off, size int64 // content position in the archive
}

// ovaReadTar lists the members of a tar archive, reporting every header
// that is not plain USTAR. It stops at the end-of-archive blocks or at
// the first header it cannot read.
func ovaReadTar(r io.ReaderAt, fileSize int64) (members []ovaMember, problems []string) {
	hdr := make([]byte, 512)
	for off := int64(0); ; {
		if off+512 > fileSize {
			if off < fileSize || len(members) == 0 {
				problems = append(problems, "archive is truncated (no end-of-archive marker)")
			}
			return members, problems
		}
		if _, err := r.ReadAt(hdr, off); err != nil {
			return members, append(problems, fmt.Sprintf("reading the archive: %v", err))
		}
		if image.IsZero(hdr) {
			return members, problems
		}
		if !ovaTarChecksumOK(hdr) {
			return members, append(problems, fmt.Sprintf("tar header at offset %d has a bad checksum (not a tar archive?)", off))
		}
		name := ovaCString(hdr[0:100])
		magic, version := string(hdr[257:263]), string(hdr[263:265])
		switch {
		case magic == "ustar\x00" && version == "00":
			if prefix := ovaCString(hdr[345:500]); prefix != "" {
				name = prefix + "/" + name
			}
		case magic == "ustar " && version == " \x00":
			problems = append(problems, fmt.Sprintf("member %q has a GNU tar header, not USTAR", name))
		default:
			problems = append(problems, fmt.Sprintf("member %q has a pre-POSIX (v7) tar header, not USTAR", name))
		}
		size, ok := ovaTarSize(hdr[124:136])
		if !ok {
			return members, append(problems, fmt.Sprintf("member %q has an unreadable size field", name))
		}
		if hdr[124]&0x80 != 0 {
			problems = append(problems, fmt.Sprintf("member %q has a base-256 size (GNU extension), not USTAR", name))
		}
		data := off + 512
		if size > fileSize-data {
			return members, append(problems, fmt.Sprintf("member %q (%d bytes) is truncated", name, size))
		}
		switch typ := hdr[156]; typ {
		case '0', 0:
			members = append(members, ovaMember{name: name, off: data, size: size})
		case 'x', 'g':
			problems = append(problems, fmt.Sprintf("archive has a PAX extended header (%q), not plain USTAR", name))
		case 'L', 'K':
			problems = append(problems, "archive has a GNU long-name header, not plain USTAR")
		case '5':
			problems = append(problems, fmt.Sprintf("archive has a directory %q; an OVA holds only files", name))
		default:
			problems = append(problems, fmt.Sprintf("member %q has tar type %q; an OVA holds only regular files", name, typ))
		}
		off = data + (size+511)/512*512
	}
}

func ovaCString(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

func ovaTarChecksumOK(h []byte) bool {
	want, err := strconv.ParseUint(strings.TrimSpace(ovaCString(h[148:156])), 8, 32)
	if err != nil {
		return false
	}
	var sum uint64
	for i, c := range h {
		if i >= 148 && i < 156 {
			c = ' '
		}
		sum += uint64(c)
	}
	return sum == want
}

// ovaTarSize decodes a size field, octal or GNU base-256.
func ovaTarSize(f []byte) (int64, bool) {
	if f[0]&0x80 != 0 {
		var v int64
		for i, c := range f {
			if i == 0 {
				c &= 0x7f
			}
			if v > (1<<62)>>8 {
				return 0, false
			}
			v = v<<8 | int64(c)
		}
		return v, true
	}
	s := strings.Trim(ovaCString(f), " ")
	if s == "" {
		return 0, true
	}
	v, err := strconv.ParseInt(s, 8, 64)
	return v, err == nil && v >= 0
}

// The parts of an OVF envelope Check looks at. Element and attribute
// names match in any namespace, so OVF 1.x and 2.x both parse.
type ovaEnvelope struct {
	XMLName    xml.Name `xml:"Envelope"`
	References struct {
		Files []struct {
			Href      string `xml:"href,attr"`
			ID        string `xml:"id,attr"`
			Size      string `xml:"size,attr"`
			ChunkSize string `xml:"chunkSize,attr"`
		} `xml:"File"`
	} `xml:"References"`
	DiskSection struct {
		Disks []struct {
			DiskID   string `xml:"diskId,attr"`
			FileRef  string `xml:"fileRef,attr"`
			Capacity string `xml:"capacity,attr"`
			Units    string `xml:"capacityAllocationUnits,attr"`
			Format   string `xml:"format,attr"`
		} `xml:"Disk"`
	} `xml:"DiskSection"`
	VirtualSystem           *struct{} `xml:"VirtualSystem"`
	VirtualSystemCollection *struct{} `xml:"VirtualSystemCollection"`
}

var ovaManifestLine = regexp.MustCompile(`^(SHA1|SHA256|SHA512)\(([^()]+)\)= ?([0-9a-fA-F]+)$`)

// ovaCapacityBytes converts ovf:capacity with its allocation units
// ("byte", "byte * 2^30", ...) to bytes.
func ovaCapacityBytes(capacity, units string) (int64, bool) {
	c, err := strconv.ParseInt(strings.TrimSpace(capacity), 10, 64)
	if err != nil || c < 0 {
		return 0, false
	}
	u := strings.ReplaceAll(units, " ", "")
	if u == "" || u == "byte" {
		return c, true
	}
	exp, ok := strings.CutPrefix(u, "byte*2^")
	if !ok {
		return 0, false
	}
	e, err := strconv.Atoi(exp)
	if err != nil || e < 0 || e > 60 || c > (1<<62)>>e {
		return 0, false
	}
	return c << e, true
}

// Check checks an OVA against the rules vSphere applies and returns
// every problem found (none: the OVA is fine). The rules: a USTAR archive
// of regular files; the .ovf descriptor first, then the .mf manifest if
// there is one (then a .cert), then the files in the order of the
// descriptor's References; the descriptor is well-formed OVF that
// references exactly the files present, with matching ovf:size; every
// manifest digest (SHA1, SHA256 or SHA512) matches and every file is
// listed; each disk is a streamOptimized VMDK (by its ovf:format and by its
// content) whose capacity the descriptor does not understate. The error is
// for an unreadable file only.
func Check(path string) ([]string, error) { return image.WithFile(path, check) }

func check(f *os.File, size int64) ([]string, error) {
	members, problems := ovaReadTar(f, size)
	report := func(format string, a ...any) { problems = append(problems, fmt.Sprintf(format, a...)) }
	if len(members) == 0 {
		report("archive holds no files")
		return problems, nil
	}
	byName := map[string]ovaMember{}
	for _, m := range members {
		if _, dup := byName[m.name]; dup {
			report("member %q appears more than once", m.name)
		}
		if !ovaLocalName(m.name) {
			report("member %q has a path that leaves the archive's directory; extracting it would write outside", m.name)
		}
		byName[m.name] = m
	}

	// Order: .ovf, .mf, .cert, then the files.
	byExt := map[string][]int{}
	for i, m := range members {
		ext := strings.ToLower(ovaExt(m.name))
		byExt[ext] = append(byExt[ext], i)
	}
	ovfs, mfs, certs := byExt[".ovf"], byExt[".mf"], byExt[".cert"]
	if !strings.EqualFold(ovaExt(members[0].name), ".ovf") {
		report("first member is %q, not the .ovf descriptor", members[0].name)
	}
	if len(ovfs) != 1 {
		report("archive holds %d .ovf descriptors, want exactly 1", len(ovfs))
	}
	if len(mfs) > 1 {
		report("archive holds %d .mf manifests, want at most 1", len(mfs))
	}
	if len(mfs) > 0 && mfs[0] != 1 {
		report("manifest %q is member %d; it must come right after the descriptor", members[mfs[0]].name, mfs[0]+1)
	}
	if len(certs) > 0 && certs[0] != 1+len(mfs) {
		report("certificate %q is member %d; it must follow the descriptor and manifest", members[certs[0]].name, certs[0]+1)
	}
	if len(ovfs) == 0 {
		return problems, nil
	}

	// The descriptor.
	ovfM := members[ovfs[0]]
	ovfData, err := ovaReadMember(f, ovfM)
	if err != nil {
		return nil, err
	}
	var env ovaEnvelope
	if ovfData == nil {
		report("descriptor %q is larger than %d bytes", ovfM.name, ovaMaxDescriptor)
	} else if err := ovaParseXML(ovfData, &env); err != nil {
		report("descriptor %q is not well-formed OVF: %v", ovfM.name, err)
	} else if env.VirtualSystem == nil && env.VirtualSystemCollection == nil {
		report("descriptor %q describes no VirtualSystem", ovfM.name)
	}

	// References against members.
	referenced := map[string]bool{}
	fileByID := map[string]string{}
	var refOrder []string
	for _, r := range env.References.Files {
		if r.Href == "" {
			report("descriptor has a File without ovf:href")
			continue
		}
		if strings.Contains(r.Href, "://") {
			report("File %q is a URL; an OVA must hold its files", r.Href)
			continue
		}
		if !ovaLocalName(r.Href) {
			report("File %q is a path outside the archive's directory; refused (only the archive's own members are read)", r.Href)
			continue
		}
		fileByID[r.ID] = r.Href
		if r.ChunkSize != "" {
			report("File %q is chunked (ovf:chunkSize); chunked files are not checked", r.Href)
			continue
		}
		referenced[r.Href] = true
		refOrder = append(refOrder, r.Href)
		m, ok := byName[r.Href]
		if !ok {
			report("descriptor references %q, which is not in the archive", r.Href)
			continue
		}
		if r.Size == "" {
			report("File %q has no ovf:size", r.Href)
		} else if n, err := strconv.ParseInt(r.Size, 10, 64); err != nil || n != m.size {
			report("File %q has ovf:size=%q but the member has %d bytes", r.Href, r.Size, m.size)
		}
	}
	var fileOrder []string
	for _, m := range members {
		switch strings.ToLower(ovaExt(m.name)) {
		case ".ovf", ".mf", ".cert":
			continue
		}
		if !referenced[m.name] {
			report("member %q is not referenced by the descriptor", m.name)
			continue
		}
		fileOrder = append(fileOrder, m.name)
	}
	var present []string
	for _, h := range refOrder {
		if _, ok := byName[h]; ok {
			present = append(present, h)
		}
	}
	if strings.Join(present, "\x00") != strings.Join(fileOrder, "\x00") {
		report("files are not in the order of the descriptor's References (%s)", strings.Join(present, ", "))
	}

	// The manifest.
	if len(mfs) > 0 {
		problems = append(problems, ovaCheckManifest(f, members[mfs[0]], members, byName)...)
	}

	// The disks.
	for _, d := range env.DiskSection.Disks {
		href, ok := fileByID[d.FileRef]
		if !ok {
			if d.FileRef != "" {
				report("disk %q refers to file id %q, which References does not define", d.DiskID, d.FileRef)
			}
			continue
		}
		if d.Format != ovaVMDKFormatURL {
			report("disk %q has ovf:format=%q; vSphere needs %s", d.DiskID, d.Format, ovaVMDKFormatURL)
		}
		m, ok := byName[href]
		if !ok {
			continue
		}
		img, err := vmdk.OpenAt(io.NewSectionReader(f, m.off, m.size), m.size)
		if err != nil {
			report("disk file %q is not a readable VMDK: %v", href, err)
			continue
		}
		if img.Subformat() != vmdk.StreamOptimized || !img.Compressed() {
			report("disk file %q is a %s VMDK, not streamOptimized", href, img.Subformat())
			continue
		}
		if _, err := img.Extents(); err != nil {
			report("disk file %q: %v", href, err)
		}
		c, ok := ovaCapacityBytes(d.Capacity, d.Units)
		switch {
		case !ok:
			report("disk %q has an unreadable capacity %q %q", d.DiskID, d.Capacity, d.Units)
		case c < img.Size():
			report("disk %q: ovf:capacity is %d bytes but the VMDK holds %d", d.DiskID, c, img.Size())
		}
	}
	return problems, nil
}

// ovaLocalName reports whether a member name or href stays in the
// archive's directory: relative, without "..".
func ovaLocalName(name string) bool {
	return filepath.IsLocal(name)
}

func ovaExt(name string) string {
	if i := strings.LastIndexByte(name, '.'); i >= 0 {
		return name[i:]
	}
	return ""
}

// ovaReadMember returns a member's content, or nil if it is too large.
func ovaReadMember(r io.ReaderAt, m ovaMember) ([]byte, error) {
	if m.size > ovaMaxDescriptor {
		return nil, nil
	}
	b := make([]byte, m.size)
	if _, err := r.ReadAt(b, m.off); err != nil && !(errors.Is(err, io.EOF) && m.size == 0) {
		return nil, err
	}
	return b, nil
}

// ovaParseXML decodes the envelope, requiring the whole document to be
// well-formed.
func ovaParseXML(data []byte, env *ovaEnvelope) error {
	d := xml.NewDecoder(bytes.NewReader(data))
	for {
		_, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
	}
	if err := xml.Unmarshal(data, env); err != nil {
		return err
	}
	return nil
}

func ovaCheckManifest(f io.ReaderAt, mf ovaMember, members []ovaMember, byName map[string]ovaMember) []string {
	var problems []string
	report := func(format string, a ...any) { problems = append(problems, fmt.Sprintf(format, a...)) }
	data, err := ovaReadMember(f, mf)
	if err != nil || data == nil {
		report("manifest %q cannot be read", mf.name)
		return problems
	}
	listed := map[string]bool{}
	for i, line := range strings.Split(strings.ReplaceAll(string(data), "\r\n", "\n"), "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		p := ovaManifestLine.FindStringSubmatch(line)
		if p == nil {
			report("manifest line %d is malformed: %q", i+1, line)
			continue
		}
		algo, name, want := p[1], p[2], strings.ToLower(p[3])
		listed[name] = true
		m, ok := byName[name]
		if !ok {
			report("manifest lists %q, which is not in the archive", name)
			continue
		}
		var h hash.Hash
		switch algo {
		case "SHA1":
			h = sha1.New()
		case "SHA256":
			h = sha256.New()
		default:
			h = sha512.New()
		}
		if len(want) != 2*h.Size() {
			report("manifest digest of %q has %d hex digits, %s needs %d", name, len(want), algo, 2*h.Size())
			continue
		}
		if _, err := io.Copy(h, io.NewSectionReader(f, m.off, m.size)); err != nil {
			report("reading %q: %v", name, err)
			continue
		}
		if got := hex.EncodeToString(h.Sum(nil)); got != want {
			report("%s digest of %q does not match the manifest (manifest %s, content %s)", algo, name, want, got)
		}
	}
	for _, m := range members {
		switch strings.ToLower(ovaExt(m.name)) {
		case ".mf", ".cert":
			continue
		}
		if !listed[m.name] {
			report("member %q is not listed in the manifest", m.name)
		}
	}
	return problems
}
