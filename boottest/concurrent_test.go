package boottest

import (
	"bytes"
	"context"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

// A suite's boots run at once only when every vCPU of every boot gets a
// core: a hybrid image's two one-vCPU TCG boots on two cores do, two
// two-vCPU boots on two cores do not, and one boot is never "at once".
func TestConcurrent(t *testing.T) {
	for _, c := range []struct {
		boots, vcpus, cores int
		want                bool
	}{
		{2, 1, 2, true},
		{2, 1, 1, false},
		{2, 2, 2, false},
		{2, 2, 4, true},
		{1, 1, 8, false},
		{0, 1, 8, false},
	} {
		require.Equal(t, c.want, Concurrent(c.boots, c.vcpus, c.cores), "%d boots of %d vCPUs on %d cores", c.boots, c.vcpus, c.cores)
	}
}

// The lines of boots logging at once reach the log whole, each with its
// boot's prefix, however their writes were cut.
func TestPrefixedLinesDoNotMix(t *testing.T) {
	var out bytes.Buffer
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, fw := range []string{"uefi", "bios"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w := &prefixedLines{mu: &mu, w: &out, prefix: "[" + fw + "] "}
			for i := range 200 {
				line := fmt.Sprintf("%s line %d\n", fw, i)
				_, _ = w.Write([]byte(line[:3])) // a line in two writes
				_, _ = w.Write([]byte(line[3:]))
			}
			_, _ = w.Write([]byte(fw + " no newline"))
			w.flush()
		}()
	}
	wg.Wait()
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	require.Len(t, lines, 402)
	seen := map[string]int{}
	for _, l := range lines {
		fw, rest, ok := strings.Cut(strings.TrimPrefix(l, "["), "] ")
		require.True(t, ok, "line %q has its prefix", l)
		require.True(t, strings.HasPrefix(rest, fw+" "), "line %q is its boot's own", l)
		if rest != fw+" no newline" {
			require.Equal(t, fmt.Sprintf("%s line %d", fw, seen[fw]), rest, "a boot's lines keep their order")
			seen[fw]++
		}
	}
	require.Equal(t, map[string]int{"uefi": 200, "bios": 200}, seen)
}

// BusyCores counts one boot's vCPUs, or every boot's when Run starts them
// at once.
func TestBusyCores(t *testing.T) {
	ctx := context.Background()
	one, err := BusyCores(ctx, 1, Devices{CPUs: 1})
	require.NoError(t, err)
	require.Equal(t, 1, one)
	want := 1
	if Concurrent(2, 1, runtime.NumCPU()) {
		want = 2
	}
	two, err := BusyCores(ctx, 2, Devices{CPUs: 1})
	require.NoError(t, err)
	require.Equal(t, want, two)
	big, err := BusyCores(ctx, 2, Devices{CPUs: 64})
	require.NoError(t, err)
	require.Equal(t, 64, big, "boots that cannot each have their cores run in turn")
}
