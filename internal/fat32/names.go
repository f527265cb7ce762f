package fat32

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// maxLongName is the longest VFAT name, in UTF-16 code units.
const maxLongName = 255

// illegalChars may not appear in any FAT name (control characters neither).
const illegalChars = `"*/:<>?\|`

// shortSpecials are the characters besides A-Z and 0-9 that a short (8.3)
// name may hold. We keep short names ASCII: no OEM code page is involved.
const shortSpecials = "!#$%&'()-@^_`{}~"

// validateName checks one path component as a (long) file name.
func validateName(name string) error {
	switch name {
	case "":
		return errors.New("empty name (leading, trailing or double slash?)")
	case ".", "..":
		return fmt.Errorf("name %q is not allowed", name)
	}
	if !utf8.ValidString(name) {
		return fmt.Errorf("name %q is not valid UTF-8", name)
	}
	for _, r := range name {
		if r < 0x20 || strings.ContainsRune(illegalChars, r) {
			return fmt.Errorf("name %q contains %q, which FAT does not allow", name, r)
		}
	}
	// Windows and Linux strip trailing dots (and Windows trailing spaces)
	// when looking a name up, so such a file could not be opened.
	if last := name[len(name)-1]; last == '.' || last == ' ' {
		return fmt.Errorf("name %q ends with a dot or a space", name)
	}
	if n := utf16Len(name); n > maxLongName {
		return fmt.Errorf("name %q is %d UTF-16 units long, more than FAT's %d", name, n, maxLongName)
	}
	return nil
}

// utf16Len is the length of name in UTF-16 code units.
func utf16Len(name string) int {
	n := 0
	for _, r := range name {
		n += utf16.RuneLen(r)
	}
	return n
}

// foldName is the key under which names are compared: FAT lookups are
// case-insensitive.
func foldName(name string) string { return strings.ToUpper(name) }

func isShortChar(c byte) bool {
	return 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte(shortSpecials, c) >= 0
}

// shortBasis derives the 8.3 basis of a long name, following the steps of
// the FAT specification: upper-case it, drop spaces and leading dots, split
// at the last dot, replace characters a short name cannot hold by '_' and
// cut the parts to 8 and 3 characters. lossy reports whether the name cannot
// be recovered from the basis (anything but upper-casing was needed); such a
// name always gets a numeric tail.
func shortBasis(name string) (base, ext string, lossy bool) {
	s := name
	if t := strings.ReplaceAll(s, " ", ""); t != s {
		s, lossy = t, true
	}
	if t := strings.TrimLeft(s, "."); t != s {
		s, lossy = t, true
	}
	if i := strings.LastIndexByte(s, '.'); i >= 0 {
		s, ext = s[:i], s[i+1:]
	}
	if t := strings.ReplaceAll(s, ".", ""); t != s {
		s, lossy = t, true
	}
	base, l1 := shortPart(s, 8)
	ext, l2 := shortPart(ext, 3)
	lossy = lossy || l1 || l2
	if base == "" { // cannot happen for a valid name; keep the entry usable
		base, lossy = "_", true
	}
	return base, ext, lossy
}

// shortPart maps s to short-name characters and cuts it to max characters.
func shortPart(s string, max int) (string, bool) {
	var out []byte
	lossy := false
	for _, r := range s {
		c := byte('_')
		switch {
		case 'a' <= r && r <= 'z':
			c = byte(r) - 'a' + 'A'
		case r < utf8.RuneSelf && isShortChar(byte(r)):
			c = byte(r)
		default:
			lossy = true
		}
		if len(out) == max {
			return string(out), true
		}
		out = append(out, c)
	}
	return string(out), lossy
}

// shortName is the 11-byte on-disk form of an 8.3 name.
type shortName [11]byte

func makeShort(base, ext string) shortName {
	var s shortName
	copy(s[:], "           ")
	copy(s[:8], base)
	copy(s[8:], ext)
	return s
}

// String returns the name as users see it, e.g. "BOOTX64.EFI".
func (s shortName) String() string {
	base := strings.TrimRight(string(s[:8]), " ")
	ext := strings.TrimRight(string(s[8:]), " ")
	if ext == "" {
		return base
	}
	return base + "." + ext
}

// checksum is the VFAT checksum of a short name, stored in its long-name
// entries.
func (s shortName) checksum() byte {
	var sum byte
	for _, c := range s {
		sum = (sum>>1 | sum<<7) + c
	}
	return sum
}

// dirName is the naming decision for one directory entry.
type dirName struct {
	short shortName
	long  bool // whether long-name entries precede the short entry
}

// assignShortNames gives each of the names of one directory its short name,
// unique within the directory. Names whose basis is lossless (valid 8.3
// names, maybe in lower or mixed case) keep it; the others get the basis
// with the smallest free "~N" tail, in the order given (callers pass the
// names sorted, so the result is deterministic). Long-name entries are
// needed for every name that is not exactly its own short name.
func assignShortNames(names []string) ([]dirName, error) {
	out := make([]dirName, len(names))
	used := make(map[shortName]bool, len(names))
	type pending struct {
		i         int
		base, ext string
	}
	var tails []pending
	for i, name := range names {
		base, ext, lossy := shortBasis(name)
		if lossy {
			tails = append(tails, pending{i, base, ext})
			continue
		}
		s := makeShort(base, ext)
		if used[s] { // cannot happen: names are unique case-insensitively
			return nil, fmt.Errorf("%q: duplicate short name %s", name, s)
		}
		used[s] = true
		out[i] = dirName{short: s, long: s.String() != name}
	}
	// The smallest free tail of a basis never shrinks (used only grows), so
	// each search resumes where the last one for the same basis stopped:
	// thousands of names with one basis stay linear.
	resume := map[shortName]int{}
	for _, p := range tails {
		basis := makeShort(p.base, p.ext)
		s, n, err := withTail(p.base, p.ext, resume[basis], used)
		if err != nil {
			return nil, fmt.Errorf("%q: %w", names[p.i], err)
		}
		resume[basis] = n
		used[s] = true
		out[p.i] = dirName{short: s, long: true}
	}
	return out, nil
}

// withTail returns base~N.ext for the smallest N > after that is not used,
// and N; base is cut so that base~N fits in 8 characters.
func withTail(base, ext string, after int, used map[shortName]bool) (shortName, int, error) {
	for n := after + 1; n <= 999999; n++ {
		tail := "~" + strconv.Itoa(n)
		b := base
		if len(b)+len(tail) > 8 {
			b = b[:8-len(tail)]
		}
		if s := makeShort(b+tail, ext); !used[s] {
			return s, n, nil
		}
	}
	return shortName{}, 0, errors.New("no free short name")
}

// longEntries returns the VFAT long-name entries for name, in on-disk order
// (last part first, flagged 0x40), each carrying the short name's checksum.
func longEntries(name string, sum byte) [][dirEntrySize]byte {
	u := utf16.Encode([]rune(name))
	n := (len(u) + 12) / 13
	if len(u) < n*13 {
		u = append(u, 0) // terminator, then 0xFFFF padding
		for len(u) < n*13 {
			u = append(u, 0xFFFF)
		}
	}
	// Offsets of the 13 UTF-16 units within an entry.
	offs := [13]int{1, 3, 5, 7, 9, 14, 16, 18, 20, 22, 24, 28, 30}
	out := make([][dirEntrySize]byte, 0, n)
	for seq := n; seq >= 1; seq-- {
		var e [dirEntrySize]byte
		e[0] = byte(seq)
		if seq == n {
			e[0] |= 0x40
		}
		e[11] = attrLongName
		e[13] = sum
		for k, off := range offs {
			c := u[(seq-1)*13+k]
			e[off], e[off+1] = byte(c), byte(c>>8)
		}
		out = append(out, e)
	}
	return out
}

// labelName validates a volume label and returns its 11-byte form. An empty
// label is "NO NAME". The label is upper-cased; it must be printable ASCII
// without the characters FAT forbids in short names.
func labelName(label string) (shortName, error) {
	if label == "" {
		label = "NO NAME"
	}
	label = strings.ToUpper(label)
	if len(label) > 11 {
		return shortName{}, fmt.Errorf("fat32: label %q is longer than 11 characters", label)
	}
	if label[0] == ' ' {
		return shortName{}, fmt.Errorf("fat32: label %q starts with a space", label)
	}
	for i := 0; i < len(label); i++ {
		c := label[i]
		if c < 0x20 || c >= 0x7F || strings.IndexByte(`"*+,./:;<=>?[\]|`, c) >= 0 {
			return shortName{}, fmt.Errorf("fat32: label %q contains %q, which a FAT label cannot hold", label, c)
		}
	}
	var s shortName
	copy(s[:], "           ")
	copy(s[:], label)
	return s, nil
}
