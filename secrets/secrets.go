// Package secrets finds what must not ship in an image: private keys (PEM,
// OpenSSH, PGP, PuTTY), SSH host keys, cloud and registry credential files,
// and the values of the recipe's sensitive variables, anywhere in a root
// tree. The builder runs it after the tree is generalised and before the
// disk is written, and fails the build on any finding the recipe did not
// allow (lint { allow = [...] }).
//
// Scope: every regular file in the tree is read. A private key or a
// sensitive value found in a file that a Debian package ships unchanged
// (its md5 matches dpkg's record) is not a finding: such a file is public,
// the same in every image with that package (test keys under
// /usr/share/doc, strings in OpenSSH's binaries), and neither is the
// byte-code Python compiled at install time from such a file. Compressed or archived
// content (an initramfs, a .gz) is not unpacked.
//
// It does not remove or change anything; the builder reports, the recipe
// decides.
package secrets

import (
	"bytes"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"syscall"

	"github.com/kiln-build/kiln/internal/dpkg"
)

// MinValueLen is the shortest sensitive value the lint looks for in the
// tree: shorter values match ordinary text in generated files (dpkg's
// database, caches) too often to tell a leak from chance.
const MinValueLen = 8

// Finding is one secret in the tree.
type Finding struct {
	Path string `json:"path"` // absolute, inside the tree: "/root/.ssh/id_ed25519"
	What string `json:"what"` // "OpenSSH private key", `value of sensitive variable "token"`, ...
}

func (f Finding) String() string { return f.Path + ": " + f.What }

// Options are what to look for besides keys and credential files, and
// what the recipe accepts.
type Options struct {
	// Values maps each sensitive variable's name to its value; values
	// shorter than MinValueLen are not looked for (see Report.Short).
	Values map[string]string
	// Allow are absolute paths or path.Match patterns ("/etc/ssl/private/*")
	// whose findings the recipe accepts.
	Allow []string
}

// Report is the outcome of one scan.
type Report struct {
	Findings []Finding // what fails the build, sorted by path
	Allowed  []Finding // what the recipe's allow list accepted, sorted by path
	Files    int       // regular files read
	// PackageFiles counts hits in files that Debian packages ship unchanged,
	// which are not findings.
	PackageFiles int
	// Short names the sensitive variables too short to look for.
	Short []string
}

// CheckAllow reports the first pattern that is not an absolute path or a
// valid path.Match pattern.
func CheckAllow(patterns []string) error {
	for _, p := range patterns {
		if !strings.HasPrefix(p, "/") {
			return fmt.Errorf("%q is not an absolute path inside the image", p)
		}
		if _, err := path.Match(p, "/"); err != nil {
			return fmt.Errorf("%q: %v", p, err)
		}
	}
	return nil
}

func allowed(patterns []string, p string) bool {
	for _, pat := range patterns {
		if pat == p {
			return true
		}
		if ok, _ := path.Match(pat, p); ok {
			return true
		}
	}
	return false
}

// chunk is how much of a file is searched at once; a key or a value that
// straddles two chunks is still found, since chunks overlap by overlap bytes.
var (
	chunk   = 16 << 20
	overlap = 256 << 10
)

// Scan walks tree and reports what it finds.
func Scan(tree string, o Options) (*Report, error) {
	if err := CheckAllow(o.Allow); err != nil {
		return nil, err
	}
	rep := &Report{}
	var values []namedValue
	for name, v := range o.Values {
		if len(v) < MinValueLen {
			rep.Short = append(rep.Short, name)
			continue
		}
		values = append(values, namedValue{name, []byte(v)})
	}
	sort.Slice(values, func(i, j int) bool { return values[i].name < values[j].name })
	sort.Strings(rep.Short)

	var sums map[string]string // dpkg's md5s, read at the first content hit
	var sumsErr error
	packaged := func(host, inTree string) bool {
		if sums == nil && sumsErr == nil {
			if sums, sumsErr = dpkg.FileSums(tree); sumsErr != nil {
				sums = map[string]string{} // no dpkg database: nothing is excused
			}
		}
		unchanged := func(host, inTree string) bool {
			want, ok := sums[inTree]
			if !ok {
				return false
			}
			got, err := md5File(host)
			return err == nil && got == want
		}
		if unchanged(host, inTree) {
			return true
		}
		// Python byte-code that dpkg compiled at install time from a
		// package's unchanged source holds the source's strings.
		if src := pycSource(inTree); src != "" {
			return unchanged(filepath.Join(tree, filepath.FromSlash(src)), src)
		}
		return false
	}

	tree = filepath.Clean(tree)
	buf := make([]byte, chunk)
	err := filepath.WalkDir(tree, func(host string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		inTree := "/" + filepath.ToSlash(strings.TrimPrefix(strings.TrimPrefix(host, tree), "/"))
		var found []Finding
		if what := byName(inTree); what != "" {
			if what, err = confirmByName(host, inTree, what); err != nil {
				return err
			}
			if what != "" {
				found = append(found, Finding{inTree, what})
			}
		}
		rep.Files++
		hits, err := searchFile(host, buf, values)
		if err != nil {
			return fmt.Errorf("secret lint: reading %s: %w", inTree, err)
		}
		if len(hits) > 0 && packaged(host, inTree) {
			rep.PackageFiles++
			hits = nil
		}
		for _, h := range hits {
			found = append(found, Finding{inTree, h})
		}
		for _, f := range found {
			if allowed(o.Allow, f.Path) {
				rep.Allowed = append(rep.Allowed, f)
			} else {
				rep.Findings = append(rep.Findings, f)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return rep, nil
}

// pycSource is the source of a byte-code file
// ("/a/__pycache__/m.cpython-311.pyc" is compiled from "/a/m.py"), or "".
func pycSource(p string) string {
	dir, file := path.Split(p)
	if path.Base(dir) != "__pycache__" || !strings.HasSuffix(file, ".pyc") {
		return ""
	}
	mod, _, ok := strings.Cut(file, ".")
	if !ok {
		return ""
	}
	return path.Join(path.Dir(path.Clean(dir)), mod+".py")
}

type namedValue struct {
	name  string
	value []byte
}

// byName recognises secrets by where they are: SSH host keys and the
// files cloud and registry tools keep credentials in.
func byName(p string) string {
	base := path.Base(p)
	switch {
	case strings.HasPrefix(p, "/etc/ssh/ssh_host_") && strings.HasSuffix(p, "_key"):
		return "SSH host key (generalise removes them; a later step made it again)"
	case strings.HasSuffix(p, "/.aws/credentials"):
		return "AWS credentials file"
	case strings.HasSuffix(p, "/.docker/config.json"):
		return "Docker registry credentials"
	case base == ".netrc":
		return ".netrc with a password"
	case base == ".git-credentials":
		return "Git credentials"
	case strings.HasSuffix(p, "/.config/gcloud/application_default_credentials.json"), strings.HasSuffix(p, "/.config/gcloud/credentials.db"):
		return "Google Cloud credentials"
	case strings.HasSuffix(p, "/.azure/accessTokens.json"), strings.HasSuffix(p, "/.azure/msal_token_cache.json"):
		return "Azure credentials"
	}
	return ""
}

// confirmByName looks inside files whose name alone does not make them
// secret: a Docker config without auths, a .netrc without a password and an
// empty credentials file are not findings.
func confirmByName(host, p, what string) (string, error) {
	fi, err := os.Stat(host)
	if err != nil {
		return "", err
	}
	if fi.Size() == 0 && !strings.HasPrefix(what, "SSH host key") {
		return "", nil
	}
	switch path.Base(p) {
	case "config.json":
		data, err := readSmall(host)
		if err != nil {
			return "", err
		}
		var cfg struct {
			Auths map[string]map[string]any `json:"auths"`
		}
		if json.Unmarshal(data, &cfg) != nil {
			return "", nil
		}
		for _, a := range cfg.Auths {
			for _, k := range []string{"auth", "identitytoken", "registrytoken", "password"} {
				if s, _ := a[k].(string); s != "" {
					return what, nil
				}
			}
		}
		return "", nil
	case ".netrc":
		data, err := readSmall(host)
		if err != nil {
			return "", err
		}
		for _, f := range strings.Fields(string(data)) {
			if f == "password" {
				return what, nil
			}
		}
		return "", nil
	}
	return what, nil
}

func readSmall(p string) ([]byte, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, 1<<20))
}

// searchFile reads one file in overlapping chunks and names every kind of
// secret in it once.
func searchFile(p string, buf []byte, values []namedValue) ([]string, error) {
	f, err := os.OpenFile(p, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	seen := map[string]bool{}
	var out []string
	note := func(s string) {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	var off int64
	for {
		n, err := f.ReadAt(buf, off)
		data := buf[:n]
		if what := privateKey(data); what != "" {
			note(what)
		}
		for _, v := range values {
			if bytes.Contains(data, v.value) {
				note(fmt.Sprintf("value of sensitive variable %q", v.name))
			}
		}
		if err == io.EOF || n < len(buf) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		off += int64(n - overlap)
	}
}

var (
	pemBegin   = []byte("-----BEGIN ")
	puttyBegin = []byte("PuTTY-User-Key-File-")
)

// privateKey names the first private key in data, or returns "". A PEM
// block counts only with its END line and a base64 body between, so the
// marker strings inside programs (ssh-keygen has "-----BEGIN OPENSSH
// PRIVATE KEY-----" as a constant) are not keys.
func privateKey(data []byte) string {
	for off := 0; off < len(data); {
		i := bytes.Index(data[off:], pemBegin)
		if i < 0 {
			break
		}
		start := off + i + len(pemBegin)
		off = start
		rest := data[start:min(start+80, len(data))]
		j := bytes.Index(rest, []byte("-----"))
		if j < 0 {
			continue
		}
		label := string(rest[:j])
		if !privateLabel(label) {
			continue
		}
		body := data[start+j+5:]
		end := []byte("-----END " + label + "-----")
		k := bytes.Index(body[:min(len(body), 1<<20)], end)
		if k < 0 || !pemBody(body[:k]) {
			continue
		}
		switch label {
		case "OPENSSH PRIVATE KEY":
			return "OpenSSH private key"
		case "PGP PRIVATE KEY BLOCK":
			return "PGP private key"
		}
		return "private key (PEM " + label + ")"
	}
	for off := 0; off < len(data); {
		i := bytes.Index(data[off:], puttyBegin)
		if i < 0 {
			break
		}
		start := off + i
		off = start + len(puttyBegin)
		if (start == 0 || data[start-1] == '\n') && bytes.Contains(data[start:min(start+1<<16, len(data))], []byte("\nPrivate-Lines:")) {
			return "PuTTY private key"
		}
	}
	return ""
}

func privateLabel(l string) bool {
	if l != "PRIVATE KEY" && !strings.HasSuffix(l, " PRIVATE KEY") && l != "PGP PRIVATE KEY BLOCK" {
		return false
	}
	for _, c := range l {
		if (c < 'A' || c > 'Z') && (c < '0' || c > '9') && c != ' ' {
			return false
		}
	}
	return true
}

// pemBody says whether b is the inside of a PEM block: optional
// "Key: value" header lines, then base64 lines (at least 64 characters in
// all), as a real key has.
func pemBody(b []byte) bool {
	n := 0
	for _, line := range bytes.Split(b, []byte("\n")) {
		line = bytes.TrimSpace(line)
		if len(line) == 0 {
			continue
		}
		if n == 0 && bytes.Contains(line, []byte(": ")) {
			continue // an RFC 1421 or armor header
		}
		for _, c := range line {
			if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '+' || c == '/' || c == '=') {
				return false
			}
		}
		n += len(line)
	}
	return n >= 64
}

func md5File(p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := md5.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
