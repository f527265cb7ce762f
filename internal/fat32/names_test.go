package fat32

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestShortNames: which short name each name of one directory gets, and
// whether it needs long-name entries. "+" marks a long name.
func TestShortNames(t *testing.T) {
	cases := []struct {
		name  string
		names []string
		want  []string
	}{
		{"valid 8.3 kept", []string{"BOOTX64.EFI", "README", "A.B", "ABCDEFGH.IJK"}, []string{"BOOTX64.EFI", "README", "A.B", "ABCDEFGH.IJK"}},
		{"lower-case 8.3 keeps its basis", []string{"loader", "Makefile", "x.c"}, []string{"LOADER+", "MAKEFILE+", "X.C+"}},
		{"too long", []string{"loader.conf", "BOOTX64.EFIX", "ABCDEFGHI"}, []string{"LOADER~1.CON+", "BOOTX6~1.EFI+", "ABCDEF~1+"}},
		{"kernel", []string{"vmlinuz-6.1.0-37-cloud-amd64"}, []string{"VMLINU~1.0-3+"}},
		{"different extensions do not collide", []string{"initrd.img-6.1.0-a", "initrd.img-6.1.0-b"}, []string{"INITRD~1.0-A+", "INITRD~1.0-B+"}},
		{"same basis", []string{"initrd.img-6.1.0-37-cloud-amd64", "initrd.img-6.1.0-38-cloud-amd64"}, []string{"INITRD~1.0-3+", "INITRD~2.0-3+"}},
		{"tails skip existing 8.3 names", []string{"ABCDEF~1", "abcdefghij", "ABCDEF~3", "abcdefghik"}, []string{"ABCDEF~1", "ABCDEF~2+", "ABCDEF~3", "ABCDEF~4+"}},
		{"lossless names win over tails", []string{"abcdefghij", "abcdef~1"}, []string{"ABCDEF~2+", "ABCDEF~1+"}},
		{"spaces, dots, specials", []string{"my file (1).txt", ".bashrc", "a+b=c.txt", "x.tar.gz", "[x]"}, []string{"MYFILE~1.TXT+", "BASHRC~1+", "A_B_C~1.TXT+", "XTAR~1.GZ+", "_X_~1+"}},
		{"non-ASCII", []string{"Grüße.txt", "日本語"}, []string{"GR__E~1.TXT+", "___~1+"}},
		{"ASCII specials are valid", []string{"A-B_C~D.$!#", "{X}.@^"}, []string{"A-B_C~D.$!#", "{X}.@^"}},
		{"long extension", []string{"ABC.DEFG"}, []string{"ABC~1.DEF+"}},
	}
	// Tails grow and the base shrinks: ~9, ~10, ~100.
	var many, manyWant []string
	for i := 1; i <= 100; i++ {
		many = append(many, fmt.Sprintf("longfilename-%03d", i))
		switch {
		case i < 10:
			manyWant = append(manyWant, fmt.Sprintf("LONGFI~%d+", i))
		case i < 100:
			manyWant = append(manyWant, fmt.Sprintf("LONGF~%d+", i))
		default:
			manyWant = append(manyWant, fmt.Sprintf("LONG~%d+", i))
		}
	}
	cases = append(cases, struct {
		name  string
		names []string
		want  []string
	}{"many tails", many, manyWant})

	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := assignShortNames(c.names)
			require.NoError(t, err)
			var gs []string
			seen := map[shortName]bool{}
			for _, d := range got {
				s := d.short.String()
				if d.long {
					s += "+"
				}
				gs = append(gs, s)
				require.False(t, seen[d.short], "short name %s given twice", d.short)
				seen[d.short] = true
			}
			require.Equal(t, c.want, gs)
		})
	}
}

func TestShortNamesScale(t *testing.T) {
	// 20000 names with one basis: must stay fast (no quadratic search).
	names := make([]string, 20000)
	for i := range names {
		names[i] = fmt.Sprintf("entry-%05d.conf", i)
	}
	start := time.Now()
	got, err := assignShortNames(names)
	require.NoError(t, err)
	require.Less(t, time.Since(start), 2*time.Second)
	require.Equal(t, "ENT~2000.CON", got[1999].short.String())
	require.Equal(t, "EN~20000.CON", got[19999].short.String())
}

func TestLongEntries(t *testing.T) {
	short := makeShort("VMLINU~1", "0-3")
	sum := short.checksum()
	es := longEntries("vmlinuz-6.1.0-37-cloud-amd64", sum) // 28 units: 13+13+2
	require.Len(t, es, 3)
	require.Equal(t, []byte{0x43, 0x02, 0x01}, []byte{es[0][0], es[1][0], es[2][0]})
	for _, e := range es {
		require.Equal(t, byte(attrLongName), e[11])
		require.Equal(t, sum, e[13])
		require.Equal(t, []byte{0, 0}, e[26:28], "cluster")
	}
	// Last part: "64", terminator, then 0xFFFF padding.
	require.Equal(t, []byte{'6', 0, '4', 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF}, es[0][1:11])
	require.Equal(t, []byte{0xFF, 0xFF, 0xFF, 0xFF}, es[0][28:32])
	require.Equal(t, []byte{'v', 0, 'm', 0, 'l', 0, 'i', 0, 'n', 0}, es[2][1:11])

	// Exactly 13 units: one entry, neither terminator nor padding.
	es = longEntries("abcdefghijklm", 0)
	require.Len(t, es, 1)
	require.Equal(t, byte(0x41), es[0][0])
	require.Equal(t, []byte{'l', 0, 'm', 0}, es[0][28:32])

	// Outside the BMP: a surrogate pair.
	es = longEntries("😀", 0)
	require.Equal(t, []byte{0x3D, 0xD8, 0x00, 0xDE, 0, 0, 0xFF, 0xFF}, es[0][1:9])
}

func TestChecksum(t *testing.T) {
	// Worked by hand from the specification's rotate-right-and-add.
	var want byte
	for _, c := range []byte("FOO     BAR") {
		want = ((want & 1) << 7) + (want >> 1) + c
	}
	require.Equal(t, want, makeShort("FOO", "BAR").checksum())
	require.Equal(t, byte(0x80), makeShort("A", "").checksum())
}

func TestValidateName(t *testing.T) {
	for _, ok := range []string{"a", "BOOTX64.EFI", "with space", " leading", "Grüße", "a.b.c", "x\x7f", strings.Repeat("x", 255)} {
		require.NoError(t, validateName(ok), ok)
	}
	for _, bad := range []string{"", ".", "..", "a*b", "a?", "a:b", "a<b", "a>b", "a|b", `a\b`, `a"b`, "a\x01", "tab\t", "dot.", "space ", strings.Repeat("x", 256), "\xff"} {
		require.Error(t, validateName(bad), "%q", bad)
	}
}

func TestLabel(t *testing.T) {
	for in, want := range map[string]string{"": "NO NAME    ", "esp": "ESP        ", "EFI SYSTEM": "EFI SYSTEM ", "ABCDEFGHIJK": "ABCDEFGHIJK"} {
		got, err := labelName(in)
		require.NoError(t, err)
		require.Equal(t, want, string(got[:]))
	}
	for _, bad := range []string{"ABCDEFGHIJKL", " LEAD", "A.B", "A*", "É", "A\x01"} {
		_, err := labelName(bad)
		require.Error(t, err, "%q", bad)
	}
}

func TestFatStamp(t *testing.T) {
	cases := []struct {
		in   time.Time
		want stamp
	}{
		{time.Time{}, stamp{date: 0<<9 | 1<<5 | 1}},
		{time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC), stamp{date: 0<<9 | 1<<5 | 1}},
		{time.Date(2024, 5, 17, 13, 37, 43, 250e6, time.UTC), stamp{date: 44<<9 | 5<<5 | 17, time: 13<<11 | 37<<5 | 21, tenth: 125}},
		// Converted to UTC: the host's time zone does not matter.
		{time.Date(2024, 5, 17, 15, 37, 42, 0, time.FixedZone("CEST", 2*3600)), stamp{date: 44<<9 | 5<<5 | 17, time: 13<<11 | 37<<5 | 21}},
		{time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC), stamp{date: 127<<9 | 12<<5 | 31, time: 23<<11 | 59<<5 | 29, tenth: 100}},
	}
	for _, c := range cases {
		require.Equal(t, c.want, fatStamp(c.in), "%v", c.in)
	}
}
