// Package components holds Kiln's built-in component library and turns the
// actions of component (and image) steps into work the builder runs: a
// script for the chroot or the guest, plus files Kiln places into the tree
// itself, through internal/fsroot, before the script runs.
//
// It does not parse HCL (package recipes does, and fills in the Action
// structs here) and does not run anything in a tree (package builder does).
package components

import (
	"time"
)

// Action kinds.
const (
	KindShell    = "shell"
	KindFile     = "file"
	KindPackages = "packages"
	KindService  = "service"
	KindUser     = "user"
	KindDownload = "download"
)

// Kinds lists every action kind, in the order the documentation gives them.
var Kinds = []string{KindShell, KindFile, KindPackages, KindService, KindUser, KindDownload}

// On-failure policies.
const (
	OnFailureAbort    = "abort"
	OnFailureContinue = "continue"
)

// Action is what one step does. Kind says which of the pointers is set.
type Action struct {
	Kind     string
	Shell    *Shell
	File     *File
	Packages *Packages
	Service  *Service
	User     *User
	Download *Download
}

// Shell runs commands: Inline lines with /bin/sh -e, or the Script file (an
// absolute host path; a #! line picks the interpreter).
type Shell struct {
	Inline []string
	Script string
}

// File writes one file. Content is the file's bytes: the recipe package
// reads (and, for templates, renders) the source when the recipe is loaded.
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
// its SHA-256 and writes it into the image. Kiln fetches it on the host: the
// image never sees the network for it.
type Download struct {
	URL         string // http://, https:// or file://
	Path        string // an absolute host path (from source = "..."); exclusive with URL
	SHA256      string // lowercase hex, required
	Destination string
	Mode        uint32 // 0644 when unset
}

// Policy is what every step has, whatever its action.
type Policy struct {
	Timeout   time.Duration // per attempt
	Retries   int           // extra attempts after a failure
	OnFailure string        // abort (default) or continue
}
