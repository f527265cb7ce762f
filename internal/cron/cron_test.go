package cron

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func mustLoc(t *testing.T, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	require.NoError(t, err)
	return loc
}

// Next, against times worked out by hand with a calendar (2026-01-01 is a
// Thursday; 2028 is a leap year).
func TestNext(t *testing.T) {
	utc := func(s string) time.Time {
		v, err := time.Parse("2006-01-02 15:04", s)
		require.NoError(t, err)
		return v
	}
	cases := []struct{ expr, from, want string }{
		{"0 3 * * *", "2026-01-01 00:00", "2026-01-01 03:00"},
		{"0 3 * * *", "2026-01-01 03:00", "2026-01-02 03:00"}, // strictly after
		{"0 3 * * *", "2026-01-01 02:59", "2026-01-01 03:00"},
		{"*/15 * * * *", "2026-01-01 10:07", "2026-01-01 10:15"},
		{"*/15 * * * *", "2026-01-01 10:45", "2026-01-01 11:00"},
		{"5 4 * * sun", "2026-01-01 00:00", "2026-01-04 04:05"}, // Sunday 4 January
		{"5 4 * * 7", "2026-01-01 00:00", "2026-01-04 04:05"},   // Sunday as 7
		{"5 4 * * 0", "2026-01-01 00:00", "2026-01-04 04:05"},
		{"0 0 1 * *", "2026-01-15 12:00", "2026-02-01 00:00"},
		{"@monthly", "2026-12-31 23:59", "2027-01-01 00:00"},
		{"@yearly", "2026-06-01 00:00", "2027-01-01 00:00"},
		{"@weekly", "2026-01-01 00:00", "2026-01-04 00:00"},
		{"@daily", "2026-01-01 00:00", "2026-01-02 00:00"},
		{"@hourly", "2026-01-01 00:30", "2026-01-01 01:00"},
		{"0 0 29 2 *", "2026-03-01 00:00", "2028-02-29 00:00"},
		{"30 2 * jan-mar mon-fri", "2026-01-01 03:00", "2026-01-02 02:30"}, // Friday
		{"30 2 * JAN-MAR MON-FRI", "2026-01-02 03:00", "2026-01-05 02:30"}, // over the weekend
		{"0 12 * apr *", "2026-01-01 00:00", "2026-04-01 12:00"},
		{"0 9-17/4 * * *", "2026-01-01 10:00", "2026-01-01 13:00"},
		{"0 9-17/4 * * *", "2026-01-01 17:01", "2026-01-02 09:00"},
		{"1,2,3 0 * * *", "2026-01-01 00:02", "2026-01-01 00:03"},
		{"10/20 * * * *", "2026-01-01 00:31", "2026-01-01 00:50"},
		// Day of month OR day of week when both are restricted: the 13th or a Friday.
		{"0 0 13 * fri", "2026-01-01 00:00", "2026-01-02 00:00"}, // Friday 2 January
		{"0 0 13 * fri", "2026-01-09 00:00", "2026-01-13 00:00"}, // Tuesday the 13th
		// Restricted day of month with * day of week: AND, i.e. just the 13th.
		{"0 0 13 * *", "2026-01-01 00:00", "2026-01-13 00:00"},
		// Friday the 13th needs both, which cron cannot say: "*/1" keeps AND.
		{"0 0 13 * */1", "2026-01-01 00:00", "2026-01-13 00:00"},
		{"0 0 31 * *", "2026-02-01 00:00", "2026-03-31 00:00"},
		{"59 23 31 12 *", "2026-01-01 00:00", "2026-12-31 23:59"},
	}
	for _, c := range cases {
		s, err := Parse(c.expr)
		require.NoError(t, err, c.expr)
		got := s.Next(utc(c.from))
		require.Equal(t, utc(c.want), got.UTC(), "%s from %s", c.expr, c.from)
	}
}

func TestNextEvery(t *testing.T) {
	s, err := Parse("@every 90s")
	require.NoError(t, err)
	require.Equal(t, 90*time.Second, s.Every())
	from := time.Date(2026, 1, 1, 0, 0, 7, 0, time.UTC)
	require.Equal(t, from.Add(90*time.Second), s.Next(from))
}

// Daylight saving: New York jumps from 02:00 EST to 03:00 EDT on 8 March
// 2026 and goes back from 02:00 EDT to 01:00 EST on 1 November 2026.
func TestNextDST(t *testing.T) {
	ny := mustLoc(t, "America/New_York")
	s, err := Parse("30 2 * * *")
	require.NoError(t, err)
	// 02:30 does not exist on 8 March: the run happens at 03:00 EDT (07:00 UTC).
	from := time.Date(2026, 3, 7, 12, 0, 0, 0, ny)
	next := s.Next(from)
	require.Equal(t, time.Date(2026, 3, 8, 7, 0, 0, 0, time.UTC), next.UTC())
	require.Equal(t, "03:00 EDT", next.Format("15:04 MST"))
	// and the day after is back to 02:30.
	require.Equal(t, time.Date(2026, 3, 9, 2, 30, 0, 0, ny), s.Next(next))

	// 01:30 exists twice on 1 November: it runs once, at the first (EDT).
	s, err = Parse("30 1 * * *")
	require.NoError(t, err)
	next = s.Next(time.Date(2026, 10, 31, 12, 0, 0, 0, ny))
	require.Equal(t, time.Date(2026, 11, 1, 5, 30, 0, 0, time.UTC), next.UTC())
	require.Equal(t, "01:30 EDT", next.Format("15:04 MST"))
	after := s.Next(next)
	require.Equal(t, time.Date(2026, 11, 2, 6, 30, 0, 0, time.UTC), after.UTC(), "not again at 01:30 EST")

	// Hourly across the fall-back: 01:00 EDT, 02:00 EST (an hour later... two
	// real hours after 01:00 EDT), no second 01:00.
	s, err = Parse("0 * * * *")
	require.NoError(t, err)
	t1 := s.Next(time.Date(2026, 11, 1, 0, 30, 0, 0, ny))
	require.Equal(t, "01:00 EDT", t1.Format("15:04 MST"))
	t2 := s.Next(t1)
	require.Equal(t, "02:00 EST", t2.Format("15:04 MST"))
	// Every minute across the spring gap: 01:59 EST then 03:00 EDT.
	s, err = Parse("* * * * *")
	require.NoError(t, err)
	t1 = s.Next(time.Date(2026, 3, 8, 1, 58, 30, 0, ny))
	require.Equal(t, "01:59 EST", t1.Format("15:04 MST"))
	require.Equal(t, "03:00 EDT", s.Next(t1).Format("15:04 MST"))

	// A time zone east of UTC with the jump at 02:00 local: Berlin, 29 March 2026.
	berlin := mustLoc(t, "Europe/Berlin")
	s, err = Parse("15 2 * * *")
	require.NoError(t, err)
	next = s.Next(time.Date(2026, 3, 28, 23, 0, 0, 0, berlin))
	require.Equal(t, "03:00 CEST", next.Format("15:04 MST"))
}

func TestParseErrors(t *testing.T) {
	for expr, want := range map[string]string{
		"":                  "5 fields",
		"* * * *":           "5 fields",
		"* * * * * *":       "5 fields",
		"60 * * * *":        "minute field",
		"* 24 * * *":        "hour field",
		"* * 0 * *":         "day of month field",
		"* * * 13 *":        "month field",
		"* * * * 8":         "day of week field",
		"* * * foo *":       "jan-dec",
		"5-1 * * * *":       "goes backwards",
		"*/0 * * * *":       "step",
		"*/x * * * *":       "step",
		"1,,2 * * * *":      "empty item",
		"+5 * * * *":        "minute field",
		"@fortnightly":      "unknown descriptor",
		"@every":            "@every needs a duration",
		"@every 10ms":       "minimum of one second",
		"@every soon":       "@every needs a duration",
		"0 0 30 2 *":        "never fires",
		"0 0 31 4,6,9,11 *": "never fires",
	} {
		_, err := Parse(expr)
		require.Error(t, err, expr)
		require.Contains(t, err.Error(), want, expr)
	}
	s, err := Parse("0 0 31 4,6,9,11 fri") // OR: every Friday too
	require.NoError(t, err)
	require.False(t, s.Next(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)).IsZero())
}

// FuzzParse: Parse never panics, and a schedule it accepts fires, strictly
// after the time given, and on a minute it matches.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"0 3 * * *", "*/5 1-4 1,15 jan-jun mon-fri", "@daily", "@every 1m", "0 0 29 2 *", "5/7 */3 31 * 7", "x"} {
		f.Add(s)
	}
	from := time.Date(2026, 3, 8, 1, 17, 23, 0, mustLocF(f, "America/New_York"))
	f.Fuzz(func(t *testing.T, expr string) {
		s, err := Parse(expr)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error")
			}
			return
		}
		next := s.Next(from)
		if next.IsZero() {
			return // e.g. "0 0 29 2 *" OR-ed with nothing; allowed but rare
		}
		if !next.After(from) {
			t.Fatalf("%q: Next(%v) = %v is not after", expr, from, next)
		}
		if s.Every() == 0 && next.Second() != 0 {
			t.Fatalf("%q: Next = %v is not on a minute", expr, next)
		}
		if s.Every() == 0 && !has(s.month, int(next.Month())) {
			t.Fatalf("%q: Next = %v is in a month the schedule does not name", expr, next)
		}
		// In UTC there is no daylight saving: the time matches every field.
		if u := s.Next(from.UTC()); s.Every() == 0 && !u.IsZero() &&
			!(has(s.minute, u.Minute()) && has(s.hour, u.Hour()) && s.dayMatches(u.Year(), u.Month(), u.Day())) {
			t.Fatalf("%q: Next = %v does not match the schedule", expr, u)
		}
	})
}

func mustLocF(f *testing.F, name string) *time.Location {
	loc, err := time.LoadLocation(name)
	if err != nil {
		f.Fatal(err)
	}
	return loc
}

// Next agrees with a minute-by-minute search over eight days, for random
// expressions, in UTC (no daylight saving) and from random start times.
func TestNextMatchesBruteForce(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	pick := func(min, max int, names []string) string {
		switch rng.IntN(6) {
		case 0:
			return "*"
		case 1:
			return fmt.Sprintf("*/%d", 1+rng.IntN(max-min+1))
		case 2:
			a := min + rng.IntN(max-min+1)
			b := a + rng.IntN(max-a+1)
			return fmt.Sprintf("%d-%d", a, b)
		case 3:
			a, b := min+rng.IntN(max-min+1), min+rng.IntN(max-min+1)
			return fmt.Sprintf("%d,%d", a, b)
		case 4:
			if names != nil {
				return names[rng.IntN(len(names))]
			}
			fallthrough
		default:
			return strconv.Itoa(min + rng.IntN(max-min+1))
		}
	}
	matches := func(s *Schedule, at time.Time) bool {
		return has(s.minute, at.Minute()) && has(s.hour, at.Hour()) && s.dayMatches(at.Year(), at.Month(), at.Day())
	}
	for i := 0; i < 400; i++ {
		expr := strings.Join([]string{pick(0, 59, nil), pick(0, 23, nil), pick(1, 31, nil), pick(1, 12, monthNames), pick(0, 7, dowNames)}, " ")
		s, err := Parse(expr)
		if err != nil {
			continue // e.g. 31 in a 30-day month only
		}
		from := time.Date(2026, time.Month(1+rng.IntN(12)), 1+rng.IntN(28), rng.IntN(24), rng.IntN(60), rng.IntN(60), 0, time.UTC)
		want := time.Time{}
		for m := from.Truncate(time.Minute).Add(time.Minute); m.Before(from.Add(8 * 24 * time.Hour)); m = m.Add(time.Minute) {
			if matches(s, m) {
				want = m
				break
			}
		}
		got := s.Next(from)
		if want.IsZero() {
			require.True(t, got.IsZero() || got.After(from.Add(8*24*time.Hour-time.Minute)), "%s from %v: got %v, brute force found nothing in 8 days", expr, from, got)
			if !got.IsZero() {
				require.True(t, matches(s, got), "%s: %v does not match", expr, got)
			}
			continue
		}
		require.Equal(t, want, got, "%s from %v", expr, from)
	}
}
