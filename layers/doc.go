// Package layers is the build-step layer cache: the root tree after each
// build step, stored as the difference from the tree before it, so that a
// rebuild restores the steps that did not change instead of running them.
//
// A layer is keyed by the key of the layer below it and by everything the
// step it records depends on (Step.Key): its script, its environment and the
// files Kiln places for it. The first step's layer hangs from a root key
// (Root) that names the tree before any step ran: the base's identity and
// what Kiln wrote into it. Changing step N therefore changes the keys of
// steps N, N+1, ... and no other.
//
// A layer is what a step changed, found by comparing two scans of the tree
// (Scan) by inode number, type, mode, owner, size, link count, mtime and
// ctime; ctime changes with every write, chmod, chown, xattr change and
// link, and no program can set it. The entries that changed are written to
// a zstd-compressed PAX tar with their owners, modes (setuid bits included),
// extended attributes (security.capability, ACLs), hard links, symlinks,
// device nodes, FIFOs and times (blocks of zeros come back as holes); the
// paths that disappeared are listed beside it. Applying a layer on the tree it was taken from gives back the
// tree the step produced (Apply).
//
// The Store keeps one directory per key under <cache>/layers/. An entry is
// written under a temporary name and renamed into place, so a killed build
// leaves no half entry, and two builds that store the same key keep one.
// Readers take a shared lock, Prune an exclusive one. An entry's digest is
// checked before it is applied.
//
// It does not decide which steps are cached or run anything: package
// builder computes the keys, runs the steps and asks the store.
package layers
