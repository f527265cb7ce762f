package recipes

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
)

// ActionKind is what a step does: its block's first label.
type ActionKind string

const (
	KindShell    ActionKind = "shell"
	KindFile     ActionKind = "file"
	KindPackages ActionKind = "packages"
	KindService  ActionKind = "service"
	KindUser     ActionKind = "user"
	KindDownload ActionKind = "download"
)

// ActionKinds lists every action kind, in the order the documentation gives
// them.
var ActionKinds = []ActionKind{KindShell, KindFile, KindPackages, KindService, KindUser, KindDownload}

// Action is what one step does. Kind says which one of the pointers is set.
type Action struct {
	Kind     ActionKind
	Shell    *Shell
	File     *File
	Packages *Packages
	Service  *Service
	User     *User
	Download *Download
}

// Shell runs commands: Inline lines with /bin/sh -e, or the Script file (an
// absolute host path; a #! line picks the interpreter). Exactly one is set.
type Shell struct {
	Inline []string
	Script string
}

// File writes one file. Content is the file's bytes: the source is read
// (and, for templates, rendered) when the recipe is loaded.
type File struct {
	Destination string // absolute path inside the image
	Content     []byte
	Source      string // the host path it came from, for messages; "" for inline content
	Mode        uint32 // permission bits, 0644 when unset
	Owner       string // user name or number; "" keeps root
	Group       string // group name or number; "" is the owner's group (root)
}

// Packages installs and removes packages with the base's package manager.
type Packages struct {
	Install []string
	Remove  []string
	Update  bool // run apt-get update first (default true)
}

// Service enables, disables or masks systemd units.
type Service struct {
	Enable  []string
	Disable []string
	Mask    []string
}

// User creates (or updates) a user, its groups, its SSH authorized keys and
// its sudo rights.
type User struct {
	Name           string
	UID            int // 0 = let useradd choose
	Groups         []string
	Shell          string // "" = /bin/bash when present, else /bin/sh
	Home           string // "" = /home/NAME
	System         bool
	AuthorizedKeys []string
	Sudo           bool // passwordless sudo through /etc/sudoers.d
}

// Download fetches a URL (http, https or file) or reads a host path, checks
// its SHA-256 and writes it into the image. The build fetches it on the
// host: the image never sees the network for it.
type Download struct {
	URL         string // http://, https:// or file://
	Path        string // an absolute host path (from source = "..."); exclusive with URL
	SHA256      string // hex, required
	Destination string
	Mode        uint32 // 0644 when unset
}

// Every step, whatever its action, takes these.
var policyAttrs = []hcl.AttributeSchema{{Name: "timeout"}, {Name: "retries"}, {Name: "on_failure"}, {Name: "cache"}}

func actionSchema(names ...string) *hcl.BodySchema {
	s := &hcl.BodySchema{Attributes: append([]hcl.AttributeSchema{}, policyAttrs...)}
	for _, n := range names {
		s.Attributes = append(s.Attributes, hcl.AttributeSchema{Name: n})
	}
	return s
}

func init() {
	shellStepSchema.Attributes = append(shellStepSchema.Attributes, hcl.AttributeSchema{Name: "retries"}, hcl.AttributeSchema{Name: "on_failure"}, hcl.AttributeSchema{Name: "cache"})
	stepSchemas[KindFile] = actionSchema("destination", "source", "content", "template", "mode", "owner", "group", "allow_outside")
	stepSchemas[KindPackages] = actionSchema("install", "remove", "update")
	stepSchemas[KindService] = actionSchema("enable", "disable", "mask")
	stepSchemas[KindUser] = actionSchema("name", "uid", "groups", "shell", "home", "system", "authorized_keys", "sudo")
	stepSchemas[KindDownload] = actionSchema("url", "source", "sha256", "destination", "mode", "allow_outside")
}

var (
	retriesArg      = arg{"retries", `2`, false}
	onFailureArg    = arg{"on_failure", `"continue"`, false}
	cacheArg        = arg{"cache", `false`, false}
	destinationArg  = arg{"destination", `"/etc/motd"`, true}
	sourceArg       = arg{"source", `"files/motd"`, false}
	contentArg      = arg{"content", `"hello\n"`, false}
	templateArg     = arg{"template", `true`, false}
	modeArg         = arg{"mode", `"0644"`, false}
	ownerArg        = arg{"owner", `"www-data"`, false}
	groupArg        = arg{"group", `"www-data"`, false}
	allowOutsideArg = arg{"allow_outside", `true`, false}
	installArg      = arg{"install", `["nginx"]`, false}
	removeArg       = arg{"remove", `["nano"]`, false}
	updateArg       = arg{"update", `false`, false}
	enableArg       = arg{"enable", `["nginx.service"]`, false}
	disableArg      = arg{"disable", `["apt-daily.timer"]`, false}
	maskArg         = arg{"mask", `["apt-daily-upgrade.timer"]`, false}
	userNameArg     = arg{"name", `"deploy"`, true}
	uidArg          = arg{"uid", `1001`, false}
	groupsArg       = arg{"groups", `["adm"]`, false}
	shellArg        = arg{"shell", `"/bin/bash"`, false}
	homeArg         = arg{"home", `"/home/deploy"`, false}
	systemArg       = arg{"system", `true`, false}
	keysArg         = arg{"authorized_keys", `["ssh-ed25519 AAAA... me@host"]`, false}
	sudoArg         = arg{"sudo", `true`, false}
	urlArg          = arg{"url", `"https://example.org/tool.tar.gz"`, false}
	sha256Arg       = arg{"sha256", `"<64 hex digits>"`, true}
)

var (
	unixNameRE = regexp.MustCompile(`^[a-z_][a-z0-9_-]{0,31}$`)
	sha256RE   = regexp.MustCompile(`^[0-9a-fA-F]{64}$`)
	modeRE     = regexp.MustCompile(`^0?[0-7]{3,4}$`)
	unitRE     = regexp.MustCompile(`^[A-Za-z0-9:_.@\\-]+$`)
)

// decodePolicy reads timeout, retries, on_failure and cache, which every step takes.
func (d *decoder) decodePolicy(s *stepBlock, diags *hcl.Diagnostics) {
	s.OnFailure = Abort
	d.getInt(s.src, retriesArg, &s.Retries, diags)
	getName(d, s.src, onFailureArg, &s.OnFailure, diags)
	cache := true
	d.getBool(s.src, cacheArg, &cache, diags)
	s.NoCache = !cache
}

// validatePolicy checks retries and on_failure.
func (s *stepBlock) validatePolicy() hcl.Diagnostics {
	var diags hcl.Diagnostics
	if a, ok := s.src.valid("retries"); ok && (s.Retries < 0 || s.Retries > 100) {
		diags = append(diags, errorDiag(a.Expr.Range(), "Invalid retries",
			fmt.Sprintf("retries is how many times a failed step is tried again: a whole number from 0 to 100, such as retries = %s.", retriesArg.example)))
	}
	if a, ok := s.src.valid("on_failure"); ok && s.OnFailure != Abort && s.OnFailure != Continue {
		diags = append(diags, errorDiag(a.Expr.Range(), "Invalid on_failure",
			fmt.Sprintf("%q is not a failure policy. Write on_failure = \"abort\" (the default: the build fails) or on_failure = \"continue\" (the failure is logged and the build goes on).", s.OnFailure)))
	}
	if a, ok := s.src.valid("cache"); ok && s.kind != "build" {
		diags = append(diags, errorDiag(a.NameRange, "cache is for build steps",
			fmt.Sprintf("Only build steps leave a tree that Kiln caches; a %s step always runs. Remove cache here, or move it to a build step.", s.kind)))
	}
	return diags
}

// decodeAction reads the arguments of a step whose type is not shell.
func (d *decoder) decodeAction(s *stepBlock, diags *hcl.Diagnostics) {
	a := Action{Kind: s.Action.Kind}
	switch a.Kind {
	case KindFile:
		f := &File{}
		var content string
		d.getStr(s.src, destinationArg, &f.Destination, diags)
		d.getStr(s.src, sourceArg, &f.Source, diags)
		d.getStr(s.src, contentArg, &content, diags)
		d.getBool(s.src, templateArg, &s.template, diags)
		d.getStr(s.src, modeArg, &s.mode, diags)
		d.getStr(s.src, ownerArg, &f.Owner, diags)
		d.getStr(s.src, groupArg, &f.Group, diags)
		d.getBool(s.src, allowOutsideArg, &s.allowOutside, diags)
		f.Content = []byte(content)
		a.File = f
	case KindPackages:
		p := &Packages{Update: true}
		d.getStrList(s.src, installArg, &p.Install, nil, diags)
		d.getStrList(s.src, removeArg, &p.Remove, nil, diags)
		d.getBool(s.src, updateArg, &p.Update, diags)
		a.Packages = p
	case KindService:
		sv := &Service{}
		d.getStrList(s.src, enableArg, &sv.Enable, nil, diags)
		d.getStrList(s.src, disableArg, &sv.Disable, nil, diags)
		d.getStrList(s.src, maskArg, &sv.Mask, nil, diags)
		a.Service = sv
	case KindUser:
		u := &User{}
		d.getStr(s.src, userNameArg, &u.Name, diags)
		d.getInt(s.src, uidArg, &u.UID, diags)
		d.getStrList(s.src, groupsArg, &u.Groups, nil, diags)
		d.getStr(s.src, shellArg, &u.Shell, diags)
		d.getStr(s.src, homeArg, &u.Home, diags)
		d.getBool(s.src, systemArg, &u.System, diags)
		d.getStrList(s.src, keysArg, &u.AuthorizedKeys, nil, diags)
		d.getBool(s.src, sudoArg, &u.Sudo, diags)
		a.User = u
	case KindDownload:
		dl := &Download{}
		d.getStr(s.src, urlArg, &dl.URL, diags)
		d.getStr(s.src, sourceArg, &dl.Path, diags)
		d.getStr(s.src, sha256Arg, &dl.SHA256, diags)
		d.getStr(s.src, destinationArg, &dl.Destination, diags)
		d.getStr(s.src, modeArg, &s.mode, diags)
		d.getBool(s.src, allowOutsideArg, &s.allowOutside, diags)
		a.Download = dl
	}
	s.Action = a
}

// validateAction checks a non-shell step's arguments, reads file sources
// (rendering templates) and resolves paths.
func (s *stepBlock) validateAction(d *decoder) hcl.Diagnostics {
	var diags hcl.Diagnostics
	add := func(r hcl.Range, summary, detail string) { diags = append(diags, errorDiag(r, summary, detail)) }
	checkDest := func(dest string) {
		if a, ok := s.src.valid("destination"); ok && (!strings.HasPrefix(dest, "/") || filepath.Clean(dest) != dest || dest == "/") {
			add(a.Expr.Range(), "Invalid destination",
				fmt.Sprintf("%q is not a clean absolute path of a file in the image. Write destination = %s.", dest, destinationArg.example))
		}
	}
	mode := func(dst *uint32) {
		a, ok := s.src.valid("mode")
		if !ok {
			return
		}
		if !modeRE.MatchString(s.mode) {
			add(a.Expr.Range(), "Invalid mode", fmt.Sprintf("%q is not an octal file mode. Write the mode as a string, such as mode = %s or \"0755\".", s.mode, modeArg.example))
			return
		}
		m, _ := strconv.ParseUint(s.mode, 8, 32)
		*dst = uint32(m)
	}
	exactlyOne := func(x, y string) bool {
		ax, ay := s.src.attrs[x], s.src.attrs[y]
		switch {
		case ax != nil && ay != nil:
			add(ay.NameRange, fmt.Sprintf("Both %s and %s are set", x, y), fmt.Sprintf("A %s step takes either %s or %s, not both. Remove one (%s is at %s).", s.Action.Kind, x, y, x, at(ax.NameRange)))
		case ax == nil && ay == nil:
			add(s.src.def, fmt.Sprintf("Missing %s or %s", x, y), fmt.Sprintf("A %s step needs either %s or %s.", s.Action.Kind, x, y))
		default:
			return true
		}
		return false
	}
	switch s.Action.Kind {
	case KindFile:
		f := s.Action.File
		checkDest(f.Destination)
		mode(&f.Mode)
		if exactlyOne("source", "content") {
			if a, ok := s.src.valid("source"); ok {
				if path, dd := s.localSource(a, f.Source); dd != nil {
					diags = append(diags, dd...)
				} else if data, err := os.ReadFile(path); err != nil {
					add(a.Expr.Range(), "Cannot read source", fmt.Sprintf("%v. Check the path.", err))
				} else {
					f.Source, f.Content = path, data
				}
			}
			if _, ok := s.src.valid("source"); ok && s.template && f.Source != "" {
				out, dd := renderTemplate(d, f.Source, f.Content)
				diags = append(diags, dd...)
				f.Content = out
			}
		}
		for _, x := range []struct {
			v   string
			arg arg
		}{{f.Owner, ownerArg}, {f.Group, groupArg}} {
			if a, ok := s.src.valid(x.arg.name); ok && !unixNameRE.MatchString(x.v) && !regexp.MustCompile(`^[0-9]+$`).MatchString(x.v) {
				add(a.Expr.Range(), "Invalid "+x.arg.name, fmt.Sprintf("%q is not a user or group name or number. Write %s = %s.", x.v, x.arg.name, x.arg.example))
			}
		}
	case KindPackages:
		p := s.Action.Packages
		if len(p.Install)+len(p.Remove) == 0 {
			add(s.src.def, "No packages", fmt.Sprintf("A packages step needs install = %s, remove = %s, or both.", installArg.example, removeArg.example))
		}
		for _, name := range append(append([]string{}, p.Install...), p.Remove...) {
			if !packageNameRE.MatchString(name) {
				r := s.src.def
				if a := s.src.attrs["install"]; a != nil && contains(p.Install, name) {
					r = a.Expr.Range()
				} else if a := s.src.attrs["remove"]; a != nil {
					r = a.Expr.Range()
				}
				add(r, "Invalid package name", fmt.Sprintf("%q is not a Debian package name (lowercase letters, digits, + - . and an optional =VERSION or /SUITE).", name))
			}
		}
	case KindService:
		sv := s.Action.Service
		if len(sv.Enable)+len(sv.Disable)+len(sv.Mask) == 0 {
			add(s.src.def, "No units", fmt.Sprintf("A service step needs enable = %s, disable, mask, or several of them.", enableArg.example))
		}
		for _, n := range []string{"enable", "disable", "mask"} {
			a, ok := s.src.valid(n)
			if !ok {
				continue
			}
			list := map[string][]string{"enable": sv.Enable, "disable": sv.Disable, "mask": sv.Mask}[n]
			for _, u := range list {
				if !unitRE.MatchString(u) || strings.HasPrefix(u, "-") {
					add(a.Expr.Range(), "Invalid unit name", fmt.Sprintf("%q is not a systemd unit name, such as %s.", u, enableArg.example))
				}
			}
		}
	case KindUser:
		u := s.Action.User
		if a, ok := s.src.valid("name"); ok && !unixNameRE.MatchString(u.Name) {
			add(a.Expr.Range(), "Invalid user name", fmt.Sprintf("%q cannot name a user: use lowercase letters, digits, _ and -, starting with a letter or _, at most 32 characters, such as %s.", u.Name, userNameArg.example))
		}
		if a, ok := s.src.valid("groups"); ok {
			for _, g := range u.Groups {
				if !unixNameRE.MatchString(g) {
					add(a.Expr.Range(), "Invalid group name", fmt.Sprintf("%q cannot name a group; use names like %s.", g, groupsArg.example))
				}
			}
		}
		if a, ok := s.src.valid("uid"); ok && (u.UID < 1 || u.UID > 60000) {
			add(a.Expr.Range(), "Invalid uid", "uid must be a whole number from 1 to 60000, such as uid = 1001; leave it out to let useradd choose.")
		}
		if a, ok := s.src.valid("authorized_keys"); ok {
			for _, k := range u.AuthorizedKeys {
				if strings.ContainsAny(strings.TrimSpace(k), "\n\r") || !strings.Contains(k, " ") {
					add(a.Expr.Range(), "Invalid authorized key", "Each authorized key is one line of an authorized_keys file, such as \"ssh-ed25519 AAAA... me@host\".")
				}
			}
		}
		for _, n := range []string{"shell", "home"} {
			v := map[string]string{"shell": u.Shell, "home": u.Home}[n]
			if a, ok := s.src.valid(n); ok && (!strings.HasPrefix(v, "/") || filepath.Clean(v) != v) {
				add(a.Expr.Range(), "Invalid "+n, fmt.Sprintf("%q is not a clean absolute path.", v))
			}
		}
	case KindDownload:
		dl := s.Action.Download
		checkDest(dl.Destination)
		mode(&dl.Mode)
		if exactlyOne("url", "source") {
			if a, ok := s.src.valid("url"); ok {
				if !strings.HasPrefix(dl.URL, "http://") && !strings.HasPrefix(dl.URL, "https://") && !strings.HasPrefix(dl.URL, "file:///") {
					add(a.Expr.Range(), "Invalid url", fmt.Sprintf("%q is not an http://, https:// or file:/// URL; for a file next to the recipe use source = %s.", dl.URL, sourceArg.example))
				}
			}
			if a, ok := s.src.valid("source"); ok {
				if path, dd := s.localSource(a, dl.Path); dd != nil {
					diags = append(diags, dd...)
				} else if fi, err := os.Stat(path); err != nil || !fi.Mode().IsRegular() {
					add(a.Expr.Range(), "Source file not found", fmt.Sprintf("There is no file %q. Paths are relative to the directory of the file that declares the step.", path))
				} else {
					dl.Path = path
				}
			}
		}
		if a, ok := s.src.valid("sha256"); ok && !sha256RE.MatchString(dl.SHA256) {
			add(a.Expr.Range(), "Invalid sha256", "sha256 is the 64 hex digits of the file's SHA-256 (sha256sum FILE prints it); every download needs one.")
		}
	}
	return diags
}

var packageNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9+.-]+(=[A-Za-z0-9.+~:-]+|/[a-z0-9-]+)?$`)

// localSource resolves a source path against the declaring file's directory
// and refuses one outside it (after symlinks) unless allow_outside is set.
func (s *stepBlock) localSource(a *hcl.Attribute, p string) (string, hcl.Diagnostics) {
	if s.dir == "" {
		return "", hcl.Diagnostics{errorDiag(a.Expr.Range(), "No files for built-in components",
			"Built-in components carry no files: use content = \"...\" (with ${param.NAME} interpolation) instead of source.")}
	}
	path := p
	if !filepath.IsAbs(path) {
		path = filepath.Join(s.dir, path)
	}
	if s.allowOutside {
		return path, nil
	}
	real, err := filepath.EvalSymlinks(path)
	if err != nil {
		return "", hcl.Diagnostics{errorDiag(a.Expr.Range(), "Source file not found",
			fmt.Sprintf("There is no file %q. Paths are relative to the directory of the file that declares the step (%s).", path, s.dir))}
	}
	base, err := filepath.EvalSymlinks(s.dir)
	if err != nil {
		base = s.dir
	}
	if rel, err := filepath.Rel(base, real); err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
		return "", hcl.Diagnostics{errorDiag(a.Expr.Range(), "Source outside the directory",
			fmt.Sprintf("%q is outside %s (the directory of the file that declares this step). Move it there, or set allow_outside = true on this step to allow it explicitly.", real, s.dir))}
	}
	return path, nil
}

// renderTemplate renders a file's bytes as an HCL template (${...}
// interpolation and %{ if }/%{ for } directives) in the step's scope: var in
// recipes, param in components.
func renderTemplate(d *decoder, filename string, src []byte) ([]byte, hcl.Diagnostics) {
	if d.files != nil {
		d.files.add(filename, src)
	}
	expr, diags := hclsyntax.ParseTemplate(src, filename, hcl.InitialPos)
	if diags.HasErrors() {
		return nil, diags
	}
	v, vd := unmarkedValue(expr, d.ctx)
	diags = append(diags, vd...)
	if vd.HasErrors() || !v.IsWhollyKnown() || v.IsNull() || v.Type() != cty.String {
		return nil, diags
	}
	return []byte(v.AsString()), diags
}
