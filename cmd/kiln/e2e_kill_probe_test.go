package main

// What the kill matrix asks the kernel after each kill: which processes the
// killed kiln had started (and whether any survived), and which mounts, in
// any mount namespace, lie in the test's directories. Nothing here trusts
// Kiln's own bookkeeping, and no process the killed kiln did not start is
// ever judged: other tests run beside the matrix (its own rows in parallel,
// other tests of the binary, other work on the machine).

import (
	"bufio"
	"bytes"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// procInfo is one process, as /proc shows it.
type procInfo struct {
	pid, ppid int
	sid       int    // session id
	start     uint64 // start time in clock ticks: tells a pid reused from the process
	state     string // R, S, D, Z (exited, not yet reaped), ...
	comm      string
	cmdline   string
}

func (p procInfo) String() string {
	return strconv.Itoa(p.pid) + " (" + p.comm + ", state " + p.state + "): " + p.cmdline
}

// readProc reads one process; ok is false when it is gone.
func readProc(pid int) (procInfo, bool) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return procInfo{}, false
	}
	// pid (comm) state ppid pgrp session ... starttime is field 22; comm
	// may hold spaces.
	s := string(data)
	open, close := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if open < 0 || close < open {
		return procInfo{}, false
	}
	f := strings.Fields(s[close+1:])
	if len(f) < 20 {
		return procInfo{}, false
	}
	p := procInfo{pid: pid, comm: s[open+1 : close], state: f[0]}
	p.ppid, _ = strconv.Atoi(f[1])
	p.sid, _ = strconv.Atoi(f[3])
	p.start, _ = strconv.ParseUint(f[19], 10, 64)
	cmd, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	p.cmdline = strings.TrimSpace(strings.ReplaceAll(string(cmd), "\x00", " "))
	return p, true
}

// allProcs lists every process.
func allProcs() []procInfo {
	entries, _ := os.ReadDir("/proc")
	var out []procInfo
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if p, ok := readProc(pid); ok {
			out = append(out, p)
		}
	}
	return out
}

// descendants lists pid and every process below it.
func descendants(pid int) []procInfo {
	all := allProcs()
	children := map[int][]procInfo{}
	var self *procInfo
	for i, p := range all {
		children[p.ppid] = append(children[p.ppid], p)
		if p.pid == pid {
			self = &all[i]
		}
	}
	if self == nil {
		return nil
	}
	out := []procInfo{*self}
	for i := 0; i < len(out); i++ {
		out = append(out, children[out[i].pid]...)
	}
	return out
}

// family is what one kiln process started, found from the kiln alone: the
// kill matrix starts each kiln in a session of its own (Setsid), and just
// before the signal takes snap, the kiln and every process below it.
// After the kill, a process belongs to the family when it is
//
//   - in snap (the same pid with the same start time: not a reused pid);
//   - in the kiln's session: a process kiln started keeps the session id
//     after its parent died and it was handed to init or a subreaper, unless
//     it called setsid() itself; started no earlier than the kiln, and
//     earlier than a process that took the kiln's pid since (which would
//     lead a session of that number);
//   - a child of a live member (started after snap, by a member that left
//     the session).
//
// No other process on the machine is considered: another row's kiln, the
// live holder, other tests' processes and this test binary are in other
// sessions and below no member.
type family struct {
	kiln procInfo   // the killed kiln, as snap saw it
	snap []procInfo // the kiln and every process below it, before the signal
}

// familyOf snapshots pid's family; pid must be running.
func familyOf(pid int) (family, bool) {
	snap := descendants(pid)
	if len(snap) == 0 {
		return family{}, false
	}
	return family{kiln: snap[0], snap: snap}, true
}

// members lists the family's processes now, zombies included.
func (f family) members() []procInfo {
	all := allProcs()
	byPid := make(map[int]procInfo, len(all))
	children := map[int][]procInfo{}
	for _, p := range all {
		byPid[p.pid] = p
		children[p.ppid] = append(children[p.ppid], p)
	}
	in := map[int]bool{}
	var out []procInfo
	add := func(p procInfo) {
		if !in[p.pid] {
			in[p.pid] = true
			out = append(out, p)
		}
	}
	for _, s := range f.snap {
		if now, ok := byPid[s.pid]; ok && now.start == s.start {
			add(now)
		}
	}
	reused := uint64(math.MaxUint64) // when another process took the kiln's pid
	if r, ok := byPid[f.kiln.pid]; ok && r.start != f.kiln.start {
		reused = r.start
	}
	for _, p := range all {
		if p.sid == f.kiln.pid && p.start >= f.kiln.start && p.start < reused {
			add(p)
		}
	}
	for i := 0; i < len(out); i++ {
		for _, c := range children[out[i].pid] {
			if c.start >= out[i].start {
				add(c)
			}
		}
	}
	return out
}

// survivors are the family's processes still running (zombies have
// exited: they are not survivors). The kernel kills what a dead kiln
// leaves (its process groups' Pdeathsig, a PID namespace whose init died)
// as it goes, so survivors waits up to a few seconds for them to go.
func (f family) survivors() []procInfo {
	var out []procInfo
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		out = out[:0]
		for _, p := range f.members() {
			if p.state != "Z" {
				out = append(out, p)
			}
		}
		if len(out) == 0 || time.Now().After(deadline) {
			return out
		}
	}
}

// under reports whether path is dir or lies below it.
func under(path string, dirs []string) bool {
	for _, d := range dirs {
		if path == d || strings.HasPrefix(path, d+"/") {
			return true
		}
	}
	return false
}

// mountsIn lists the mounts, in every mount namespace on the host, whose
// mount point lies in one of dirs: the host's (/proc/self/mountinfo), and
// those of every other namespace (a sandbox's, an unshare'd mmdebstrap's),
// read through one of its processes and placed at that process's root.
func mountsIn(dirs []string) []string {
	var out []string
	seen := map[string]bool{}
	check := func(pid string) {
		ns, err := os.Readlink("/proc/" + pid + "/ns/mnt")
		if err != nil || seen[ns] {
			return
		}
		seen[ns] = true
		root, err := os.Readlink("/proc/" + pid + "/root")
		if err != nil {
			return
		}
		data, err := os.ReadFile("/proc/" + pid + "/mountinfo")
		if err != nil {
			return
		}
		sc := bufio.NewScanner(bytes.NewReader(data))
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			if len(f) < 5 {
				continue
			}
			point := filepath.Join(root, unescapeMount(f[4]))
			if under(point, dirs) {
				out = append(out, "mount namespace "+ns+" (pid "+pid+"): "+point)
			}
		}
	}
	check("self")
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err == nil {
			check(e.Name())
		}
	}
	return out
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// isEmulator reports a QEMU or swtpm process (Secure Boot builds run a
// software TPM beside QEMU).
func isEmulator(p procInfo) bool {
	return strings.HasPrefix(p.comm, "qemu-system") || p.comm == "swtpm"
}
