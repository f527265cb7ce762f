package units

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Day is 24 hours, the unit of ParseAge's "d".
const Day = 24 * time.Hour

// ParseAge parses an age such as "90d", "2w", "36h" or "1h30m": a whole
// number of days (d) or weeks (w), or a Go duration (h, m, s). It must be
// positive.
func ParseAge(s string) (time.Duration, error) {
	t := strings.TrimSpace(s)
	for _, u := range []struct {
		suffix string
		unit   time.Duration
	}{{"d", Day}, {"w", 7 * Day}} {
		if n, ok := strings.CutSuffix(t, u.suffix); ok {
			v, err := strconv.Atoi(n)
			if err != nil || v <= 0 || strconv.Itoa(v) != n || v > 100000 {
				return 0, fmt.Errorf("%q is not an age: write a whole number of days or weeks such as \"90d\" or \"2w\", or a duration such as \"36h\"", s)
			}
			return time.Duration(v) * u.unit, nil
		}
	}
	d, err := time.ParseDuration(t)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("%q is not an age: write a whole number of days or weeks such as \"90d\" or \"2w\", or a duration such as \"36h\"", s)
	}
	return d, nil
}

// FormatAge writes d the way ParseAge reads it, in days when it is a whole
// number of days.
func FormatAge(d time.Duration) string {
	if d > 0 && d%Day == 0 {
		return strconv.FormatInt(int64(d/Day), 10) + "d"
	}
	return d.String()
}
