package main

// What the kill matrix asks the kernel after each kill: which processes a
// kiln process had (and whether any survived), which processes use the
// test's directories, and which mounts, in any mount namespace, lie in
// them. Nothing here trusts Kiln's own bookkeeping.

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// procInfo is one process, as /proc shows it.
type procInfo struct {
	pid, ppid int
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
	// pid (comm) state ppid ... starttime is field 22; comm may hold spaces.
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

// survivors are the processes of snap still running (same pid, same
// start, not a zombie). The kernel kills what a dead kiln leaves (its
// process groups' Pdeathsig, a PID namespace whose init died) as it
// goes, so survivors waits up to a few seconds for them to go.
func survivors(snap []procInfo) []procInfo {
	var out []procInfo
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		out = out[:0]
		for _, p := range snap {
			if now, ok := readProc(p.pid); ok && now.start == p.start && now.state != "Z" {
				out = append(out, now)
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

// processesUsing lists the processes (other than this one and those in
// except) whose command line names one of dirs or whose root, working
// directory or open files lie in one: a chrooted build step, a QEMU on a
// staged disk, an mmdebstrap on a cache entry.
func processesUsing(dirs []string, except map[int]bool) []procInfo {
	var out []procInfo
	me := os.Getpid()
	for _, p := range allProcs() {
		if p.pid == me || except[p.pid] {
			continue
		}
		if uses(p, dirs) {
			out = append(out, p)
		}
	}
	return out
}

func uses(p procInfo, dirs []string) bool {
	for _, d := range dirs {
		if strings.Contains(p.cmdline, d) {
			return true
		}
	}
	base := "/proc/" + strconv.Itoa(p.pid)
	for _, l := range []string{"root", "cwd"} {
		if t, err := os.Readlink(base + "/" + l); err == nil && under(t, dirs) {
			return true
		}
	}
	fds, _ := os.ReadDir(base + "/fd")
	for _, fd := range fds {
		if t, err := os.Readlink(base + "/fd/" + fd.Name()); err == nil && under(t, dirs) {
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
