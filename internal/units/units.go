// Package units parses and formats byte sizes as written in recipes:
// "512", "512B", "4KiB", "256MiB", "2GiB", "1TiB" (binary, powers of 1024)
// and "10MB", "1GB" (decimal, powers of 1000).
//
// Units are case-insensitive, a space may separate the number from the unit,
// and the number may have a decimal fraction ("1.5GiB") as long as the result
// is a whole number of bytes. A bare number is a count of bytes.
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

// units maps every accepted unit, lower-cased, to its size in bytes.
var units = map[string]uint64{
	"":    1,
	"b":   1,
	"kib": KiB, "mib": MiB, "gib": GiB, "tib": TiB, "pib": PiB, "eib": EiB,
	"kb": 1e3, "mb": 1e6, "gb": 1e9, "tb": 1e12, "pb": 1e15, "eb": 1e18,
}

// maxNumberLen bounds the digits ParseSize reads; no real size needs more.
const maxNumberLen = 40

// ErrSyntax is wrapped by every error ParseSize returns for text that is not
// a size at all (as opposed to a size that is out of range).
var ErrSyntax = errors.New("invalid size")

// ErrRange is wrapped by ParseSize's error for sizes that do not fit in 64 bits.
var ErrRange = errors.New("size out of range")

// ParseSize parses a size such as "2GiB", "256 MiB", "10MB" or "4096" into bytes.
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
	num, rest := t[:i], strings.TrimSpace(t[i:])
	if num == "" {
		return 0, fmt.Errorf("%w %q: it must start with a number, such as \"2GiB\"", ErrSyntax, s)
	}
	intPart, frac, hasDot := strings.Cut(num, ".")
	if intPart == "" || (hasDot && frac == "") || strings.Contains(frac, ".") {
		return 0, fmt.Errorf("%w %q: %q is not a number", ErrSyntax, s, num)
	}
	mult, ok := units[strings.ToLower(rest)]
	if !ok {
		return 0, fmt.Errorf("%w %q: unknown unit %q (use B, KiB, MiB, GiB, TiB, or KB, MB, GB, TB for powers of 1000)", ErrSyntax, s, rest)
	}
	if len(num) > maxNumberLen {
		return 0, fmt.Errorf("%w: %q is too large", ErrRange, s)
	}
	mant, _ := new(big.Int).SetString(intPart+frac, 10) // digits only: cannot fail
	v := new(big.Int).Mul(mant, new(big.Int).SetUint64(mult))
	den := new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(len(frac))), nil)
	q, r := new(big.Int).QuoRem(v, den, new(big.Int))
	if r.Sign() != 0 {
		return 0, fmt.Errorf("%w %q: it is not a whole number of bytes", ErrSyntax, s)
	}
	if !q.IsUint64() {
		return 0, fmt.Errorf("%w: %q is larger than %d bytes", ErrRange, s, uint64(1<<64-1))
	}
	return q.Uint64(), nil
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

func isDigit(c byte) bool { return c >= '0' && c <= '9' }
