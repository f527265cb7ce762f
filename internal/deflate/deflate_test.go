package deflate

import (
	"bytes"
	"compress/zlib"
	"io"
	"math/rand"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kiln-build/kiln/internal/testutil"
)

func vzInflate(t testing.TB, z []byte) []byte {
	t.Helper()
	r, err := zlib.NewReader(bytes.NewReader(z))
	require.NoError(t, err)
	out, err := io.ReadAll(r)
	require.NoError(t, err)
	return out
}

func vzInputs(t testing.TB) map[string][]byte {
	rng := rand.New(rand.NewSource(7))
	random := make([]byte, MaxInput)
	rng.Read(random)
	skewed := make([]byte, MaxInput) // few symbols, very unequal: long codes
	for i := range skewed {
		v := rng.ExpFloat64() * 2
		skewed[i] = byte(min(v, 40))
	}
	mixed := append(append(testutil.Text(20000), random[:20000]...), make([]byte, 25536)...)
	runs := make([]byte, MaxInput)
	for i := range runs {
		runs[i] = byte(i / 300)
	}
	return map[string][]byte{
		"empty":    {},
		"one":      {42},
		"three":    {1, 2, 3},
		"zeros":    make([]byte, MaxInput),
		"random":   random,
		"text":     testutil.Text(MaxInput),
		"binaries": testutil.Binaries(t, MaxInput),
		"skewed":   skewed,
		"mixed":    mixed,
		"runs":     runs,
		"short":    testutil.Text(1000),
		"odd":      random[:12345],
	}
}

func TestDeflateRoundTrip(t *testing.T) {
	d := NewEncoder()
	for name, in := range vzInputs(t) {
		z := d.Compress(nil, in)
		require.Equal(t, in, append([]byte{}, vzInflate(t, z)...), name)
		// Incompressible data costs only the stored-block overhead.
		require.LessOrEqual(t, len(z), len(in)+2+4+2*5+1, name)
		t.Logf("%-8s %6d -> %6d", name, len(in), len(z))
	}
}

// On real-looking grains the encoder must not lose to compress/zlib at
// its default level, in total (on very repetitive text its shorter match
// search can lose a little).
func TestDeflateRatio(t *testing.T) {
	d := NewEncoder()
	all := testutil.Binaries(t, 32*MaxInput)
	ours, ref := 0, 0
	for off := 0; off < len(all); off += MaxInput {
		in := all[off : off+MaxInput]
		var b bytes.Buffer
		w := zlib.NewWriter(&b)
		_, _ = w.Write(in)
		require.NoError(t, w.Close())
		ref += b.Len()
		ours += len(d.Compress(nil, in))
	}
	t.Logf("32 grains of binaries: kiln %d, compress/zlib %d", ours, ref)
	require.LessOrEqual(t, ours, ref)
}

// Huffman code lengths are complete (Kraft sum 1), within the limit, and
// as short as package-merge's optimum.
func TestHuffmanLengths(t *testing.T) {
	var m vzHuffman
	rng := rand.New(rand.NewSource(3))
	for iter := 0; iter < 2000; iter++ {
		n := 2 + rng.Intn(300)
		limit := []int{7, 15}[iter%2]
		if n > 1<<limit {
			n = 1 << limit
		}
		freq := make([]int32, n)
		for i := range freq {
			switch iter % 3 {
			case 0:
				freq[i] = int32(rng.Intn(1000))
			case 1: // Fibonacci-like: forces long codes
				freq[i] = int32(1 << min(i, 24) / 3)
			default:
				freq[i] = int32(rng.ExpFloat64() * 50)
			}
		}
		lens := make([]uint8, n)
		m.lengths(freq, limit, lens)
		used, kraft := 0, 0.0
		cost := 0
		for i, l := range lens {
			if freq[i] == 0 {
				require.Zero(t, l)
				continue
			}
			used++
			require.LessOrEqual(t, int(l), limit)
			require.NotZero(t, l)
			kraft += 1 / float64(uint64(1)<<l)
			cost += int(freq[i]) * int(l)
		}
		if used >= 2 {
			require.InDelta(t, 1.0, kraft, 1e-9, "iter %d", iter)
			// Package-merge directly gives the optimum; the fast path must
			// match it.
			var keys []uint32
			for s, f := range freq {
				if f > 0 {
					keys = append(keys, uint32(f)<<9|uint32(s))
				}
			}
			sortU32(keys)
			pm := make([]uint8, n)
			m.packageMerge(keys, limit, pm)
			pmCost := 0
			for i, l := range pm {
				pmCost += int(freq[i]) * int(l)
			}
			require.Equal(t, pmCost, cost, "iter %d", iter)
		}
	}
}

func sortU32(a []uint32) {
	for i := 1; i < len(a); i++ {
		for j := i; j > 0 && a[j] < a[j-1]; j-- {
			a[j], a[j-1] = a[j-1], a[j]
		}
	}
}

func FuzzDeflate(f *testing.F) {
	for _, in := range vzInputs(f) {
		if len(in) > 4096 {
			in = in[:4096]
		}
		f.Add(in)
	}
	d := NewEncoder()
	f.Fuzz(func(t *testing.T, in []byte) {
		if len(in) > MaxInput {
			in = in[:MaxInput]
		}
		z := d.Compress(nil, in)
		require.True(t, bytes.Equal(in, vzInflate(t, z)))
	})
}
