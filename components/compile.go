package components

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"

	"github.com/kiln-build/kiln/internal/run"
	"github.com/kiln-build/kiln/recipes"
)

// MaxDownload bounds what a download action fetches (it is held in memory).
const MaxDownload = 1 << 30

// compile turns an action into the Files and Script of a Step. Download
// actions are fetched here, on the host, and their SHA-256 is checked.
func compile(ctx context.Context, a recipes.Action) (Step, error) {
	switch a.Kind {
	case recipes.KindShell:
		if a.Shell.Script != "" {
			data, err := os.ReadFile(a.Shell.Script)
			if err != nil {
				return Step{}, err
			}
			return Step{Script: data}, nil
		}
		return Step{Script: []byte("#!/bin/sh\nset -e\n" + strings.Join(a.Shell.Inline, "\n") + "\n")}, nil
	case recipes.KindFile:
		f := a.File
		w := Step{Files: []Placed{{Path: f.Destination, Data: f.Content, Mode: modeOr(f.Mode, 0o644)}}}
		if f.Owner != "" || f.Group != "" {
			owner := f.Owner
			if owner == "" {
				owner = "root"
			}
			spec := owner
			if f.Group != "" {
				spec += ":" + f.Group
			} else {
				spec += ":"
			}
			w.Script = []byte("#!/bin/sh\nset -e\nchown -- " + run.QuoteArg(spec) + " " + run.QuoteArg(f.Destination) + "\n")
		}
		return w, nil
	case recipes.KindPackages:
		return Step{Script: packagesScript(a.Packages)}, nil
	case recipes.KindService:
		return Step{Script: serviceScript(a.Service)}, nil
	case recipes.KindUser:
		return userStep(a.User), nil
	case recipes.KindDownload:
		data, err := fetch(ctx, a.Download)
		if err != nil {
			return Step{}, err
		}
		return Step{Files: []Placed{{Path: a.Download.Destination, Data: data, Mode: modeOr(a.Download.Mode, 0o644)}}}, nil
	}
	return Step{}, fmt.Errorf("unknown action kind %q", a.Kind)
}

func modeOr(m, def uint32) uint32 {
	if m == 0 {
		return def
	}
	return m
}

func packagesScript(p *recipes.Packages) []byte {
	var b strings.Builder
	b.WriteString("#!/bin/sh\nset -e\nexport DEBIAN_FRONTEND=noninteractive\n")
	if len(p.Install) > 0 {
		if p.Update {
			b.WriteString("apt-get update\n")
		}
		fmt.Fprintf(&b, "apt-get install -y --no-install-recommends -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold -- %s\n", run.Quote(p.Install))
	}
	if len(p.Remove) > 0 {
		fmt.Fprintf(&b, "apt-get purge -y -- %s\n", run.Quote(p.Remove))
		b.WriteString("apt-get autoremove -y --purge\n")
	}
	b.WriteString("apt-get clean\n")
	return []byte(b.String())
}

func serviceScript(s *recipes.Service) []byte {
	var b strings.Builder
	b.WriteString("#!/bin/sh\nset -e\n")
	if len(s.Enable) > 0 {
		fmt.Fprintf(&b, "systemctl enable -- %s\n", run.Quote(s.Enable))
	}
	if len(s.Disable) > 0 {
		fmt.Fprintf(&b, "systemctl disable -- %s\n", run.Quote(s.Disable))
	}
	if len(s.Mask) > 0 {
		fmt.Fprintf(&b, "systemctl mask -- %s\n", run.Quote(s.Mask))
	}
	return []byte(b.String())
}

func userStep(u *recipes.User) Step {
	var b strings.Builder
	name := run.QuoteArg(u.Name)
	b.WriteString("#!/bin/sh\nset -e\n")
	sys := ""
	if u.System {
		sys = " -r"
	}
	for _, g := range u.Groups {
		fmt.Fprintf(&b, "getent group %s >/dev/null || groupadd%s -- %s\n", run.QuoteArg(g), sys, run.QuoteArg(g))
	}
	if u.Shell != "" {
		fmt.Fprintf(&b, "sh=%s\n", run.QuoteArg(u.Shell))
	} else {
		b.WriteString("sh=/bin/bash; [ -x /bin/bash ] || sh=/bin/sh\n")
	}
	opts := sys
	if u.UID > 0 {
		opts += fmt.Sprintf(" -u %d", u.UID)
	}
	if u.Home != "" {
		opts += " -d " + run.QuoteArg(u.Home)
	}
	fmt.Fprintf(&b, "if id -u %s >/dev/null 2>&1; then usermod -s \"$sh\" -- %s; else useradd -m%s -s \"$sh\" -- %s; fi\n", name, name, opts, name)
	if len(u.Groups) > 0 {
		fmt.Fprintf(&b, "usermod -a -G %s -- %s\n", run.QuoteArg(strings.Join(u.Groups, ",")), name)
	}
	if len(u.AuthorizedKeys) > 0 {
		fmt.Fprintf(&b, "home=$(getent passwd %s | cut -d: -f6)\ngid=$(id -g %s)\n", name, name)
		fmt.Fprintf(&b, "install -d -m 700 -o %s -g \"$gid\" \"$home/.ssh\"\n", name)
		b.WriteString("cat > \"$home/.ssh/authorized_keys\" <<'KILN_KEYS_EOF'\n")
		for _, k := range u.AuthorizedKeys {
			b.WriteString(strings.TrimSpace(k) + "\n")
		}
		b.WriteString("KILN_KEYS_EOF\n")
		fmt.Fprintf(&b, "chown %s:\"$gid\" \"$home/.ssh/authorized_keys\"\nchmod 600 \"$home/.ssh/authorized_keys\"\n", name)
	}
	w := Step{Script: []byte(b.String())}
	if u.Sudo {
		w.Files = append(w.Files, Placed{Path: "/etc/sudoers.d/kiln-" + u.Name, Data: []byte(u.Name + " ALL=(ALL:ALL) NOPASSWD: ALL\n"), Mode: 0o440})
	}
	return w
}

// fetch reads a download's bytes and checks their SHA-256.
func fetch(ctx context.Context, d *recipes.Download) ([]byte, error) {
	var data []byte
	var err error
	src := d.Path
	switch {
	case d.Path != "":
		data, err = readLimited(func() (io.ReadCloser, error) { return os.Open(d.Path) })
	default:
		src = d.URL
		u, perr := url.Parse(d.URL)
		if perr != nil {
			return nil, perr
		}
		if u.Scheme == "file" {
			data, err = readLimited(func() (io.ReadCloser, error) { return os.Open(u.Path) })
			break
		}
		data, err = readLimited(func() (io.ReadCloser, error) {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, d.URL, nil)
			if err != nil {
				return nil, err
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return nil, err
			}
			if resp.StatusCode != http.StatusOK {
				resp.Body.Close()
				return nil, fmt.Errorf("GET %s: %s", d.URL, resp.Status)
			}
			return resp.Body, nil
		})
	}
	if err != nil {
		return nil, fmt.Errorf("download %s: %w", src, err)
	}
	sum := sha256.Sum256(data)
	if got := hex.EncodeToString(sum[:]); got != strings.ToLower(d.SHA256) {
		return nil, fmt.Errorf("download %s: sha256 is %s, the recipe expects %s; nothing was written", src, got, d.SHA256)
	}
	return data, nil
}

func readLimited(open func() (io.ReadCloser, error)) ([]byte, error) {
	r, err := open()
	if err != nil {
		return nil, err
	}
	defer r.Close()
	data, err := io.ReadAll(io.LimitReader(r, MaxDownload+1))
	if err != nil {
		return nil, err
	}
	if len(data) > MaxDownload {
		return nil, fmt.Errorf("larger than %d bytes", MaxDownload)
	}
	return data, nil
}

// guestScript makes w self-contained for the guest: its files are embedded
// (base64) and written first, then its script runs. p's retries and
// on_failure are applied inside the guest; each attempt is bounded by p's
// timeout.
func guestScript(w Step, p recipes.Policy) []byte {
	var b bytes.Buffer
	b.WriteString("#!/bin/sh\n# generated by kiln\n")
	for _, f := range w.Files {
		fmt.Fprintf(&b, "mkdir -p \"$(dirname %s)\"\nbase64 -d > %s <<'KILN_DATA_EOF'\n%s\nKILN_DATA_EOF\nchmod %o %s || exit 1\n",
			run.QuoteArg(f.Path), run.QuoteArg(f.Path), wrap76(base64.StdEncoding.EncodeToString(f.Data)), f.Mode, run.QuoteArg(f.Path))
	}
	script := w.Script
	if script == nil {
		script = []byte("#!/bin/sh\ntrue\n")
	}
	start := "/bin/sh -e \"$t\""
	if bytes.HasPrefix(script, []byte("#!")) {
		start = "\"$t\""
	}
	secs := int(p.Timeout.Seconds())
	if secs < 1 {
		secs = 300
	}
	fmt.Fprintf(&b, "t=$(mktemp)\nbase64 -d > \"$t\" <<'KILN_DATA_EOF'\n%s\nKILN_DATA_EOF\nchmod 755 \"$t\"\n", wrap76(base64.StdEncoding.EncodeToString(script)))
	fmt.Fprintf(&b, "n=0\nwhile :; do\n\ttimeout -k 5 %d %s\n\trc=$?\n\t[ $rc -eq 0 ] && { rm -f \"$t\"; exit 0; }\n", secs, start)
	fmt.Fprintf(&b, "\tn=$((n+1))\n\t[ $n -gt %d ] && break\n\techo \"kiln: attempt $n failed with exit code $rc; retrying\"\ndone\nrm -f \"$t\"\n", p.Retries)
	if p.OnFailure == recipes.Continue {
		b.WriteString("echo \"kiln: failed with exit code $rc; on_failure = continue\"\nexit 0\n")
	} else {
		b.WriteString("exit $rc\n")
	}
	return b.Bytes()
}

func wrap76(s string) string {
	var b strings.Builder
	for len(s) > 76 {
		b.WriteString(s[:76] + "\n")
		s = s[76:]
	}
	b.WriteString(s)
	return b.String()
}
