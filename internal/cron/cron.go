// Package cron parses cron schedules and computes when they next fire, and
// runs jobs on them (see Service).
//
// A schedule is the standard five fields, minute hour day-of-month month
// day-of-week, each a "*", a number, a range "a-b", a list "a,b,c" or a step
// "*/n", "a-b/n" or "a/n" (a to the field's maximum); months and weekdays also
// take their English three-letter names (jan, mon; any case), and Sunday is 0
// or 7. When both day-of-month and day-of-week are restricted (neither starts
// with "*"), a day matches if either does, as in every Unix cron. The
// descriptors @yearly (@annually), @monthly, @weekly, @daily (@midnight) and
// @hourly stand for their usual expressions, and the non-standard
// "@every DURATION" (a Go duration of at least one second, e.g. @every 90s)
// fires at fixed intervals from the previous run, whatever the wall clock.
//
// Times are wall-clock times in the schedule's location. Around daylight
// saving changes:
//   - a time that does not exist (the clock jumps from 02:00 to 03:00 and the
//     schedule says 02:30) fires once, at the first instant after the gap
//     (03:00 local), so a daily job is never lost;
//   - a time that exists twice (the clock goes back from 03:00 to 02:00 and
//     the schedule says 02:30) fires once, at its first occurrence.
//
// It does not run builds: the caller's job function does.
package cron

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Schedule is a parsed cron expression.
type Schedule struct {
	expr                     string
	minute, hour, dom, month uint64 // bit i set: value i matches
	dow                      uint64 // 0 = Sunday .. 6
	domStar, dowStar         bool
	every                    time.Duration // @every; the fields are unused
}

// String returns the expression as written.
func (s *Schedule) String() string { return s.expr }

// Every returns the interval of an @every schedule, or 0.
func (s *Schedule) Every() time.Duration { return s.every }

var descriptors = map[string]string{
	"@yearly":   "0 0 1 1 *",
	"@annually": "0 0 1 1 *",
	"@monthly":  "0 0 1 * *",
	"@weekly":   "0 0 * * 0",
	"@daily":    "0 0 * * *",
	"@midnight": "0 0 * * *",
	"@hourly":   "0 * * * *",
}

type field struct {
	name     string
	min, max int
	names    []string // names[i] is value min+i
}

var (
	monthNames = []string{"jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"}
	dowNames   = []string{"sun", "mon", "tue", "wed", "thu", "fri", "sat"}
	fields     = []field{
		{"minute", 0, 59, nil},
		{"hour", 0, 23, nil},
		{"day of month", 1, 31, nil},
		{"month", 1, 12, monthNames},
		{"day of week", 0, 7, dowNames},
	}
)

// Parse parses a five-field expression or a descriptor. Its errors say
// which field is wrong and what is allowed there.
func Parse(expr string) (*Schedule, error) {
	text := strings.TrimSpace(expr)
	if strings.HasPrefix(text, "@") {
		if rest, ok := strings.CutPrefix(text, "@every"); ok && (rest == "" || rest[0] == ' ' || rest[0] == '\t') {
			rest = strings.TrimSpace(rest)
			d, err := time.ParseDuration(rest)
			if err != nil {
				return nil, fmt.Errorf("@every needs a duration such as @every 30s or @every 1h30m, not %q", rest)
			}
			if d < time.Second {
				return nil, fmt.Errorf("@every %s is shorter than the minimum of one second", rest)
			}
			return &Schedule{expr: expr, every: d}, nil
		}
		std, ok := descriptors[strings.ToLower(text)]
		if !ok {
			return nil, fmt.Errorf("unknown descriptor %q: use @yearly, @monthly, @weekly, @daily, @hourly or @every DURATION", text)
		}
		s, err := Parse(std)
		if err != nil {
			return nil, err
		}
		s.expr = expr
		return s, nil
	}
	parts := strings.Fields(text)
	if len(parts) != 5 {
		return nil, fmt.Errorf("a cron schedule has 5 fields (minute hour day-of-month month day-of-week), such as \"0 3 * * *\"; %q has %d", expr, len(parts))
	}
	s := &Schedule{expr: expr}
	dst := []*uint64{&s.minute, &s.hour, &s.dom, &s.month, &s.dow}
	for i, p := range parts {
		bitsSet, err := parseField(p, fields[i])
		if err != nil {
			return nil, err
		}
		*dst[i] = bitsSet
	}
	if s.dow&(1<<7) != 0 { // Sunday as 7
		s.dow = s.dow&^(1<<7) | 1
	}
	s.domStar = strings.HasPrefix(parts[2], "*")
	s.dowStar = strings.HasPrefix(parts[4], "*")
	if s.dom&(1<<29|1<<30|1<<31) == s.dom && !s.domStar && s.dowStar {
		// Only days 29-31: check that some month has them.
		ok := false
		for m := 1; m <= 12; m++ {
			if s.month&(1<<m) != 0 && s.dom&^(^uint64(0)<<(daysIn(m)+1)) != 0 {
				ok = true
			}
		}
		if !ok {
			return nil, fmt.Errorf("%q never fires: no month it names has the days it names", expr)
		}
	}
	return s, nil
}

func daysIn(month int) int {
	switch month {
	case 2:
		return 29
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

func parseField(text string, f field) (uint64, error) {
	var set uint64
	for _, item := range strings.Split(text, ",") {
		if item == "" {
			return 0, fmt.Errorf("empty item in the %s field %q", f.name, text)
		}
		rng, stepText, hasStep := strings.Cut(item, "/")
		lo, hi := f.min, f.max
		switch {
		case rng == "*":
			if f.name == "day of week" {
				hi = 6
			}
		case strings.Contains(rng, "-"):
			a, b, _ := strings.Cut(rng, "-")
			var err error
			if lo, err = value(a, f); err != nil {
				return 0, err
			}
			if hi, err = value(b, f); err != nil {
				return 0, err
			}
			if lo > hi {
				return 0, fmt.Errorf("the range %q in the %s field goes backwards; write it as %d-%d or as a list", rng, f.name, hi, lo)
			}
		default:
			var err error
			if lo, err = value(rng, f); err != nil {
				return 0, err
			}
			hi = lo
			if hasStep { // "a/n" is a to the maximum
				hi = f.max
				if f.name == "day of week" {
					hi = 6
				}
			}
		}
		step := 1
		if hasStep {
			n, err := strconv.Atoi(stepText)
			if err != nil || n < 1 || n > f.max {
				return 0, fmt.Errorf("the step %q in the %s field must be a number from 1 to %d", stepText, f.name, f.max)
			}
			step = n
		}
		for v := lo; v <= hi; v += step {
			set |= 1 << v
		}
	}
	return set, nil
}

func value(text string, f field) (int, error) {
	for i, n := range f.names {
		if strings.EqualFold(text, n) {
			return f.min + i, nil
		}
	}
	n, err := strconv.Atoi(text)
	if err != nil || n < f.min || n > f.max || strings.HasPrefix(text, "+") {
		hint := ""
		if f.names != nil {
			hint = fmt.Sprintf(" or a name (%s-%s)", f.names[0], f.names[len(f.names)-1])
		}
		return 0, fmt.Errorf("%q is not valid in the %s field: use a number from %d to %d%s", text, f.name, f.min, f.max, hint)
	}
	return n, nil
}

func has(set uint64, v int) bool { return set&(1<<v) != 0 }

func (s *Schedule) dayMatches(y int, m time.Month, d int) bool {
	if !has(s.month, int(m)) {
		return false
	}
	wd := int(time.Date(y, m, d, 12, 0, 0, 0, time.UTC).Weekday())
	domOK, dowOK := has(s.dom, d), has(s.dow, wd)
	if !s.domStar && !s.dowStar {
		return domOK || dowOK
	}
	return domOK && dowOK
}

// maxYears bounds the search: every valid schedule fires within 28 years
// (the weekday calendar repeats), so this is only a safety net.
const maxYears = 30

// Next returns the first time after t at which s fires, in t's location
// (use t.In(loc) for another time zone), or the zero time if it never does.
// For @every it is t plus the interval.
func (s *Schedule) Next(t time.Time) time.Time {
	if s.every > 0 {
		return t.Add(s.every)
	}
	loc := t.Location()
	// Walk the wall-clock calendar from the minute after t.
	start := t.Truncate(time.Minute)
	y, mo, d := start.Date()
	h, mi := start.Hour(), start.Minute()+1
	first := true
	for day := time.Date(y, mo, d, 12, 0, 0, 0, time.UTC); day.Year() <= y+maxYears; day = day.AddDate(0, 0, 1) {
		dy, dm, dd := day.Date()
		if !first && !has(s.month, int(dm)) {
			// Skip to the first of the next month.
			day = time.Date(dy, dm+1, 1, 12, 0, 0, 0, time.UTC).AddDate(0, 0, -1)
			continue
		}
		if s.dayMatches(dy, dm, dd) {
			h0 := 0
			if first {
				h0 = h
			}
			for hr := h0; hr < 24; hr++ {
				if !has(s.hour, hr) {
					continue
				}
				m0 := 0
				if first && hr == h {
					m0 = mi
				}
				for m := m0; m < 60; m++ {
					if !has(s.minute, m) {
						continue
					}
					if at, ok := resolve(dy, dm, dd, hr, m, loc); ok && at.After(t) {
						return at
					}
				}
			}
		}
		first = false
	}
	return time.Time{}
}

// resolve turns a wall-clock time into an instant: the earlier of two when
// the time exists twice, the end of the gap when it does not exist.
func resolve(y int, mo time.Month, d, h, m int, loc *time.Location) (time.Time, bool) {
	naive := time.Date(y, mo, d, h, m, 0, 0, time.UTC).Unix()
	guess := time.Date(y, mo, d, h, m, 0, 0, loc)
	offsets := map[int]bool{}
	for _, probe := range []time.Duration{-26 * time.Hour, 0, 26 * time.Hour} {
		_, off := guess.Add(probe).Zone()
		offsets[off] = true
	}
	var best time.Time
	var cands []time.Time
	for off := range offsets {
		at := time.Unix(naive-int64(off), 0).In(loc)
		cands = append(cands, at)
		ay, am, ad := at.Date()
		if ay == y && am == mo && ad == d && at.Hour() == h && at.Minute() == m {
			if best.IsZero() || at.Before(best) {
				best = at
			}
		}
	}
	if !best.IsZero() {
		return best, true
	}
	// A gap: the first instant whose offset is the later one.
	if len(cands) < 2 {
		return guess, true
	}
	lo, hi := cands[0], cands[0]
	for _, c := range cands {
		if c.Before(lo) {
			lo = c
		}
		if c.After(hi) {
			hi = c
		}
	}
	_, offHi := hi.Zone()
	a, b := lo.Unix(), hi.Unix() // offset(a) != offHi, offset(b) == offHi
	for b-a > 1 {
		mid := a + (b-a)/2
		if _, off := time.Unix(mid, 0).In(loc).Zone(); off == offHi {
			b = mid
		} else {
			a = mid
		}
	}
	return time.Unix(b, 0).In(loc), true
}
