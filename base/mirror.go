package base

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// AptSourcesDir and AptSourcesList are where HostMirror looks; tests point them elsewhere.
var (
	AptSourcesList = "/etc/apt/sources.list"
	AptSourcesDir  = "/etc/apt/sources.list.d"
)

// HostMirror returns the Debian archive URI the host's apt is configured
// with: the first "deb" source whose suites include a plain release suite
// (not -security, -updates, -backports or -proposed-updates). Kiln never
// hard-codes a mirror; a recipe's mirror overrides this.
func HostMirror() (string, error) {
	var files []string
	if _, err := os.Stat(AptSourcesList); err == nil {
		files = append(files, AptSourcesList)
	}
	for _, pat := range []string{"*.list", "*.sources"} {
		m, _ := filepath.Glob(filepath.Join(AptSourcesDir, pat))
		sort.Strings(m)
		files = append(files, m...)
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		var uri string
		if strings.HasSuffix(f, ".sources") {
			uri = mirrorFromDeb822(data)
		} else {
			uri = mirrorFromList(data)
		}
		if uri != "" {
			return strings.TrimRight(uri, "/"), nil
		}
	}
	return "", fmt.Errorf("no Debian archive found in the host's apt sources (%s, %s/*.sources, %s/*.list); set `mirror` in the recipe's base block", AptSourcesList, AptSourcesDir, AptSourcesDir)
}

func isReleaseSuite(s string) bool {
	for _, suffix := range []string{"-security", "-updates", "-backports", "-proposed-updates"} {
		if strings.HasSuffix(s, suffix) {
			return false
		}
	}
	return s != "" && !strings.Contains(s, "/")
}

func mirrorFromList(data []byte) string {
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = strings.TrimSpace(line[:i])
		}
		f := strings.Fields(line)
		if len(f) < 3 || f[0] != "deb" {
			continue
		}
		f = f[1:]
		if strings.HasPrefix(f[0], "[") { // options: [arch=amd64 signed-by=...]
			for len(f) > 0 && !strings.HasSuffix(f[0], "]") {
				f = f[1:]
			}
			if len(f) > 0 {
				f = f[1:]
			}
		}
		if len(f) >= 2 && isReleaseSuite(f[1]) {
			return f[0]
		}
	}
	return ""
}

func mirrorFromDeb822(data []byte) string {
	for _, stanza := range strings.Split(string(data), "\n\n") {
		fields := map[string]string{}
		for _, line := range strings.Split(stanza, "\n") {
			if strings.HasPrefix(strings.TrimSpace(line), "#") {
				continue
			}
			k, v, ok := strings.Cut(line, ":")
			if ok && !strings.HasPrefix(line, " ") {
				fields[strings.ToLower(strings.TrimSpace(k))] = strings.TrimSpace(v)
			}
		}
		if fields["enabled"] == "no" || !strings.Contains(" "+fields["types"]+" ", " deb ") {
			continue
		}
		uris := strings.Fields(fields["uris"])
		if len(uris) == 0 {
			continue
		}
		for _, s := range strings.Fields(fields["suites"]) {
			if isReleaseSuite(s) {
				return uris[0]
			}
		}
	}
	return ""
}

// Release is what Kiln reads from the archive's InRelease (or Release)
// file for a suite.
type Release struct {
	URL    string
	SHA256 string    // of the file: the fingerprint of everything the archive served
	Date   time.Time // its Date field, when the archive published it; zero if absent
}

// ReadRelease fetches the archive's InRelease file (else Release) for suite.
func ReadRelease(ctx context.Context, mirror, suite string) (Release, error) {
	var lastErr error
	for _, name := range []string{"InRelease", "Release"} {
		u := strings.TrimRight(mirror, "/") + "/dists/" + suite + "/" + name
		data, err := fetch(ctx, u)
		if err != nil {
			lastErr = err
			continue
		}
		sum := sha256.Sum256(data)
		return Release{URL: u, SHA256: hex.EncodeToString(sum[:]), Date: releaseDate(data)}, nil
	}
	return Release{}, lastErr
}

// ReleaseDigest returns the sha256 of the archive's InRelease (or Release)
// file for suite: the fingerprint of everything the archive served.
func ReleaseDigest(ctx context.Context, mirror, suite string) (string, error) {
	r, err := ReadRelease(ctx, mirror, suite)
	return r.SHA256, err
}

// releaseDate reads the Date field of a Release file ("Sat, 06 Dec 2026
// 08:17:29 UTC"), or returns the zero time.
func releaseDate(data []byte) time.Time {
	for _, line := range strings.Split(string(data), "\n") {
		v, ok := strings.CutPrefix(line, "Date:")
		if !ok {
			continue
		}
		v = strings.TrimSpace(v)
		for _, layout := range []string{time.RFC1123, time.RFC1123Z, "Mon, 2 Jan 2006 15:04:05 MST", "Mon, 2 Jan 2006 15:04:05 -0700"} {
			if t, err := time.Parse(layout, v); err == nil {
				return t.UTC()
			}
		}
		return time.Time{}
	}
	return time.Time{}
}

func fetch(ctx context.Context, rawURL string) ([]byte, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, err
	}
	if u.Scheme == "file" {
		return os.ReadFile(u.Path)
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", rawURL, resp.Status)
	}
	return io.ReadAll(io.LimitReader(resp.Body, 64<<20))
}
