package guest

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/kiln-build/kiln/manifest"
)

// A boot profile says when a boot reached each milestone, in seconds from
// QEMU's start. It is read from two sources:
//
//   - the serial console (ttyS0), each line stamped with the host time its
//     first byte arrived (ConsoleRecorder): the firmware's and the
//     bootloader's messages, and, when the console is not quiet, the
//     kernel's and systemd's;
//   - the clocks the guest reports once multi-user.target is active
//     (KILN-BOOT on ttyS1): systemd's own timestamps and the kernel's
//     messages from its ring buffer (which keeps what a quiet console does
//     not print), in seconds since the kernel started. The runner's
//     KILN-CLOCK line on the console gives the guest's uptime at a host
//     time, which places the guest's clock on the host's.
//
// What the guest reports wins over the console; the console alone still
// shows how far a boot that never reached the runner got.

// Kernel messages that mark milestones, as patterns both grep -E and Go accept.
const (
	initMarker    = `Run /[^ ]* as init process`
	rootMarker    = `EXT4-fs \([^)]*\): mounted filesystem`
	systemdMarker = `systemd\[1\]: systemd [0-9]`
)

var (
	initRE      = regexp.MustCompile(initMarker)
	rootRE      = regexp.MustCompile(rootMarker)
	systemdKmRE = regexp.MustCompile(systemdMarker)
	printkRE    = regexp.MustCompile(`\[\s*(\d+\.\d{6})\]`)
	escapeRE    = regexp.MustCompile(`\x1b(\[[0-9;=?]*[ -/]*[@-~]|[()][0-9A-Za-z]|[0-9A-Za-z=>])`)
	clockRE     = regexp.MustCompile(`KILN-CLOCK (\d+(\.\d+)?)`)
	firmwareRE  = regexp.MustCompile(`BdsDxe: starting Boot`)
	loaderRE    = regexp.MustCompile(`^Loading Linux `)
	efiStubRE   = regexp.MustCompile(`EFI stub: `)
	initrdRE    = regexp.MustCompile(`Loading, please wait\.\.\.`)
	systemdRE   = regexp.MustCompile(`systemd\[1\]: systemd \d+|^Welcome to `)
	multiUserRE = regexp.MustCompile(`Reached target (multi-user\.target|Multi-User System)`)
)

// ConsoleLine is one line of the serial console, without its line ending,
// and when its first byte arrived, counted from QEMU's start.
type ConsoleLine struct {
	At   time.Duration
	Text string
}

// ConsoleRecorder is an io.Writer for QEMU's live console (qemu.Options.
// Console) that stamps each line with the time its first byte arrived,
// counted from the recorder's creation: make it just before QEMU starts.
// Output that follows a pause of consolePause or more starts a line of its
// own even without a newline, so that what the guest prints later on a line
// left open (GRUB's "Loading Linux ...", a status line redrawn in place) is
// stamped when it arrived.
type ConsoleRecorder struct {
	start   time.Time
	mu      sync.Mutex
	lines   []ConsoleLine
	partial []byte
	at      time.Duration // when partial's first byte arrived
	last    time.Duration // when the last byte arrived
}

const consolePause = 250 * time.Millisecond

// NewConsoleRecorder starts the clock.
func NewConsoleRecorder() *ConsoleRecorder { return &ConsoleRecorder{start: time.Now()} }

func (r *ConsoleRecorder) Write(p []byte) (int, error) {
	now := time.Since(r.start)
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.partial) > 0 && now-r.last >= consolePause {
		r.lines = append(r.lines, ConsoleLine{At: r.at, Text: string(r.partial)})
		r.partial = r.partial[:0]
	}
	r.last = now
	for rest := p; len(rest) > 0; {
		if len(r.partial) == 0 {
			r.at = now
		}
		i := strings.IndexByte(string(rest), '\n')
		if i < 0 {
			r.partial = append(r.partial, rest...)
			break
		}
		r.partial = append(r.partial, rest[:i]...)
		r.lines = append(r.lines, ConsoleLine{At: r.at, Text: string(r.partial)})
		r.partial = r.partial[:0]
		rest = rest[i+1:]
	}
	return len(p), nil
}

// Lines returns the lines so far, with an unfinished last line.
func (r *ConsoleRecorder) Lines() []ConsoleLine {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := append([]ConsoleLine(nil), r.lines...)
	if len(r.partial) > 0 {
		out = append(out, ConsoleLine{At: r.at, Text: string(r.partial)})
	}
	return out
}

// WriteTimedConsole writes lines as "SECONDS TEXT", one per line, without
// carriage returns: the timed console log kiln test --profile keeps and
// ReadTimedConsole reads.
func WriteTimedConsole(w io.Writer, lines []ConsoleLine) error {
	bw := bufio.NewWriter(w)
	for _, l := range lines {
		fmt.Fprintf(bw, "%.3f %s\n", l.At.Seconds(), strings.TrimRight(l.Text, "\r"))
	}
	return bw.Flush()
}

// ReadTimedConsole reads what WriteTimedConsole wrote.
func ReadTimedConsole(r io.Reader) ([]ConsoleLine, error) {
	var out []ConsoleLine
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for n := 1; sc.Scan(); n++ {
		at, text, _ := strings.Cut(sc.Text(), " ")
		sec, err := strconv.ParseFloat(at, 64)
		if err != nil {
			return nil, fmt.Errorf("timed console line %d: %q is not a time in seconds", n, at)
		}
		out = append(out, ConsoleLine{At: seconds(sec), Text: text})
	}
	return out, sc.Err()
}

// BootClocks is what the guest reported about its boot (KILN-BOOT), in
// seconds since its kernel started; 0 means not reported.
type BootClocks struct {
	Init      float64 // the kernel ran init (the initramfs's /init)
	Root      float64 // the root filesystem was mounted
	Systemd   float64 // systemd's first message, as it starts on the root filesystem
	MultiUser float64 // multi-user.target became active
}

// parseBootClocks reads the decoded KILN-BOOT block: multi-user.target's
// properties from systemctl show (KEY=VALUE, microseconds) and the kernel's
// messages that mark init, the root filesystem and systemd, with their
// timestamps.
func parseBootClocks(text string) BootClocks {
	var c BootClocks
	for _, line := range strings.Split(text, "\n") {
		if k, v, ok := strings.Cut(line, "="); ok && k == "ActiveEnterTimestampMonotonic" {
			if us, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err == nil && us > 0 {
				c.MultiUser = us / 1e6
			}
			continue
		}
		t, ok := printkTime(line)
		if !ok {
			continue
		}
		switch {
		case c.Init == 0 && initRE.MatchString(line):
			c.Init = t
		case c.Root == 0 && rootRE.MatchString(line):
			c.Root = t
		case c.Systemd == 0 && systemdKmRE.MatchString(line):
			c.Systemd = t
		}
	}
	return c
}

// printkTime returns the kernel timestamp of a console or dmesg line.
func printkTime(line string) (float64, bool) {
	m := printkRE.FindStringSubmatch(line)
	if m == nil {
		return 0, false
	}
	t, err := strconv.ParseFloat(m[1], 64)
	return t, err == nil
}

// CleanConsoleLine drops terminal escape sequences and carriage returns.
func CleanConsoleLine(s string) string {
	return strings.ReplaceAll(escapeRE.ReplaceAllString(s, ""), "\r", "")
}

// Profile places a boot's milestones on the host's clock, from the timed
// console and what the guest reported (its zero value when it reported
// nothing). It returns nil when no milestone was seen.
func Profile(console []ConsoleLine, clocks BootClocks) *manifest.BootProfile {
	p := &manifest.BootProfile{}
	first := func(dst *float64, re *regexp.Regexp, text string, at time.Duration) {
		if *dst == 0 && re.MatchString(text) {
			*dst = at.Seconds()
		}
	}
	// The kernel's clock starts at zero: a line stamped t that arrived at
	// host time h says it started no later than h - t. The earliest such
	// bound is the estimate; a line still in the kernel's buffer when the
	// console came up arrives late and only loosens its own bound.
	kernel, anchor := math.Inf(1), math.NaN()
	var efiStub float64
	for _, l := range console {
		text := CleanConsoleLine(l.Text)
		first(&p.Firmware, firmwareRE, text, l.At)
		first(&p.Bootloader, loaderRE, text, l.At)
		first(&efiStub, efiStubRE, text, l.At)
		first(&p.Init, initRE, text, l.At)
		first(&p.Init, initrdRE, text, l.At)
		first(&p.Root, rootRE, text, l.At)
		first(&p.Systemd, systemdRE, text, l.At)
		first(&p.MultiUser, multiUserRE, text, l.At)
		if t, ok := printkTime(text); ok && t > 0 {
			kernel = math.Min(kernel, l.At.Seconds()-t)
		}
		if m := clockRE.FindStringSubmatch(text); m != nil && math.IsNaN(anchor) {
			if up, _ := strconv.ParseFloat(m[1], 64); l.At.Seconds() >= up {
				anchor = l.At.Seconds() - up
			}
		}
	}
	switch {
	case !math.IsNaN(anchor):
		p.Kernel = anchor
	case !math.IsInf(kernel, 1):
		p.Kernel, anchor = kernel, kernel
	default:
		p.Kernel = efiStub
	}
	if !math.IsNaN(anchor) {
		for _, c := range []struct {
			dst *float64
			t   float64
		}{{&p.Init, clocks.Init}, {&p.Root, clocks.Root}, {&p.Systemd, clocks.Systemd}, {&p.MultiUser, clocks.MultiUser}} {
			if c.t > 0 {
				*c.dst = anchor + c.t
			}
		}
	}
	for _, f := range []*float64{&p.Firmware, &p.Bootloader, &p.Kernel, &p.Init, &p.Root, &p.Systemd, &p.MultiUser} {
		*f = math.Max(0, math.Round(*f*100)/100)
	}
	if p.Firmware+p.Bootloader+p.Kernel+p.Init+p.Root+p.Systemd+p.MultiUser == 0 {
		return nil
	}
	return p
}

// parseBlame reads systemd-analyze blame: "1min 2.345s unit", "345ms unit".
func parseBlame(text string) []manifest.UnitTime {
	var out []manifest.UnitTime
	for _, line := range strings.Split(text, "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		unit := f[len(f)-1]
		d, err := time.ParseDuration(strings.ReplaceAll(strings.Join(f[:len(f)-1], ""), "min", "m"))
		if err != nil || !strings.Contains(unit, ".") {
			continue
		}
		out = append(out, manifest.UnitTime{Unit: unit, Seconds: math.Round(d.Seconds()*1000) / 1000})
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Seconds > out[j].Seconds })
	return out
}

func seconds(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }
