// Package units parses and formats byte sizes as written in recipes:
// "512" (bytes), "512B", "4KiB", "256MiB", "2GiB", "1TiB", "1PiB", "1EiB":
// binary units, powers of 1024, spelt exactly so (case matters, no space
// between the number and the unit). The number may have a decimal fraction
// ("1.5GiB") as long as the result is a whole number of bytes.
//
// Decimal units (KB, MB, GB, TB: powers of 1000) and shorthands ("2G",
// "128mb", "1.5 GiB") are refused, with a suggestion: Kiln lays disks and
// partitions out in whole MiB, so a decimal size could never be honoured
// exactly, and "G" or "GB" is read as 1000³ by some tools and 1024³ by
// others. The error says what the text would have meant and what to write.
package units

import (
	"errors"
	"fmt"
	"math/big"
	"strings"
)

// Binary units.
const (
	KiB uint64 = 1 << (10 * (iota + 1))
	MiB
	GiB
	TiB
	PiB
	EiB
)

type unit struct {
	name string
	size uint64
}

// binaryUnits are tried by FormatSize from the largest down.
var binaryUnits = []unit{{"EiB", EiB}, {"PiB", PiB}, {"TiB", TiB}, {"GiB", GiB}, {"MiB", MiB}, {"KiB", KiB}}

// units maps every accepted unit, exactly as written, to its size in bytes.
var units = map[string]uint64{
	"": 1, "B": 1,
	"KiB": KiB, "MiB": MiB, "GiB": GiB, "TiB": TiB, "PiB": PiB, "EiB": EiB,
}

// lookalikes maps other spellings of a unit, lower-cased and without a
// trailing "s", to the binary unit meant: "2G", "2gib", "2Gi", "2GB"... The
// decimal ones are flagged so that the message can say what they mean.
var lookalikes = map[string]struct {
	unit    string
	decimal uint64 // the decimal unit's size, 0 for binary shorthands
}{
	"b": {"B", 0}, "byte": {"B", 0},
	"k": {"KiB", 0}, "ki": {"KiB", 0}, "kib": {"KiB", 0}, "kb": {"KiB", 1e3},
	"m": {"MiB", 0}, "mi": {"MiB", 0}, "mib": {"MiB", 0}, "mb": {"MiB", 1e6},
	"g": {"GiB", 0}, "gi": {"GiB", 0}, "gib": {"GiB", 0}, "gb": {"GiB", 1e9},
	"t": {"TiB", 0}, "ti": {"TiB", 0}, "tib": {"TiB", 0}, "tb": {"TiB", 1e12},
	"p": {"PiB", 0}, "pi": {"PiB", 0}, "pib": {"PiB", 0}, "pb": {"PiB", 1e15},
	"e": {"EiB", 0}, "ei": {"EiB", 0}, "eib": {"EiB", 0}, "eb": {"EiB", 1e18},
}

// maxNumberLen bounds the digits ParseSize reads; no real size needs more.
const maxNumberLen = 40

// ErrSyntax is wrapped by every error ParseSize returns for text that is not
// a size at all (as opposed to a size that is out of range).
var ErrSyntax = errors.New("invalid size")

// ErrRange is wrapped by ParseSize's error for sizes that do not fit in 64 bits.
var ErrRange = errors.New("size out of range")

// Accepted lists the units ParseSize accepts, for messages.
const Accepted = "B, KiB, MiB, GiB, TiB, PiB or EiB (powers of 1024), or no unit for bytes"

// ParseSize parses a size such as "2GiB", "256MiB", "1.5GiB" or "4096" into
// bytes. Surrounding space is ignored.
func ParseSize(s string) (uint64, error) {
	t := strings.TrimSpace(s)
	if t == "" {
		return 0, fmt.Errorf("%w: empty", ErrSyntax)
	}
	if t[0] == '-' {
		return 0, fmt.Errorf("%w %q: sizes cannot be negative", ErrSyntax, s)
	}
	i := 0
	for i < len(t) && (isDigit(t[i]) || t[i] == '.') {
		i++
	}
	num, rest := t[:i], t[i:]
	if num == "" {
		return 0, fmt.Errorf("%w %q: it must start with a number, such as \"2GiB\"", ErrSyntax, s)
	}
	intPart, frac, hasDot := strings.Cut(num, ".")
	if intPart == "" || (hasDot && frac == "") || strings.Contains(frac, ".") {
		return 0, fmt.Errorf("%w %q: %q is not a number", ErrSyntax, s, num)
	}
	if len(num) > maxNumberLen {
		return 0, fmt.Errorf("%w: %q is too large", ErrRange, s)
	}
	mult, ok := units[rest]
	if !ok {
		return 0, unitError(s, num, rest)
	}
	q, err := scale(num, mult)
	if err != nil {
		return 0, fmt.Errorf("%w %q: %v", ErrSyntax, s, err)
	}
	if !q.IsUint64() {
		return 0, fmt.Errorf("%w: %q is larger than %d bytes", ErrRange, s, uint64(1<<64-1))
	}
	return q.Uint64(), nil
}

// scale is the decimal number num times mult, which must be whole.
func scale(num string, mult uint64) (*big.Int, error) {
	intPart, frac, _ := strings.Cut(num, ".")
	mant, _ := new(big.Int).SetString(intPart+frac, 10) // digits only: cannot fail
	v := new(big.Int).Mul(mant, new(big.Int).SetUint64(mult))
	den := new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(len(frac))), nil)
	q, r := new(big.Int).QuoRem(v, den, new(big.Int))
	if r.Sign() != 0 {
		return nil, errors.New("it is not a whole number of bytes")
	}
	return q, nil
}

// unitError explains a unit ParseSize does not accept, with what to write
// instead when the unit is recognisable.
func unitError(s, num, rest string) error {
	written := strings.TrimSpace(rest)
	key := strings.ToLower(written)
	if len(key) > 1 {
		key = strings.TrimSuffix(key, "s")
	}
	l, known := lookalikes[key]
	if !known {
		return fmt.Errorf("%w %q: unknown unit %q; use %s", ErrSyntax, s, written, Accepted)
	}
	want := num + l.unit
	if l.unit == "B" && !strings.Contains(num, ".") {
		want = num
	}
	switch {
	case l.decimal != 0:
		also := ""
		if q, err := scale(num, l.decimal); err == nil && q.IsUint64() && q.Uint64() > 0 {
			mib := (q.Uint64() + MiB - 1) / MiB
			also = fmt.Sprintf(", or \"%dMiB\", the smallest whole number of MiB that holds %s decimal %s", mib, num, strings.ToUpper(key))
		}
		return fmt.Errorf("%w %q: %s is a decimal unit (powers of 1000), which Kiln does not accept because disks are laid out in whole MiB; write %q (powers of 1024)%s",
			ErrSyntax, s, written, want, also)
	case written != rest && written == l.unit:
		return fmt.Errorf("%w %q: no space between the number and the unit; write %q", ErrSyntax, s, want)
	default:
		return fmt.Errorf("%w %q: units are spelt exactly B, KiB, MiB, GiB, TiB, PiB or EiB; write %q", ErrSyntax, s, want)
	}
}

// FormatSize formats n bytes exactly, in the largest binary unit that
// expresses it with at most two decimals: 2147483648 is "2GiB", 1610612736
// is "1.5GiB", 1000 is "1000B". ParseSize(FormatSize(n)) == n for every n.
func FormatSize(n uint64) string {
	for _, u := range binaryUnits {
		if n < u.size {
			continue
		}
		whole, rem := n/u.size, n%u.size
		if rem == 0 {
			return fmt.Sprintf("%d%s", whole, u.name)
		}
		// rem/u.size as exactly two decimals, if it is exact.
		hundredths := new(big.Int).Mul(new(big.Int).SetUint64(rem), big.NewInt(100))
		q, r := hundredths.QuoRem(hundredths, new(big.Int).SetUint64(u.size), new(big.Int))
		if r.Sign() != 0 {
			continue
		}
		f := fmt.Sprintf("%02d", q.Uint64())
		return fmt.Sprintf("%d.%s%s", whole, strings.TrimRight(f, "0"), u.name)
	}
	return fmt.Sprintf("%dB", n)
}

// ApproxSize formats n bytes for people, rounded to one decimal in the
// largest binary unit below it: "512 B", "3.4 KiB", "1.5 GiB".
func ApproxSize(n uint64) string {
	for _, u := range binaryUnits {
		if n >= u.size {
			return fmt.Sprintf("%.1f %s", float64(n)/float64(u.size), u.name)
		}
	}
	return fmt.Sprintf("%d B", n)
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }
