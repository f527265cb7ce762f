package recipes

import (
	"path/filepath"
	"testing"
)

// BenchmarkParseSeeds parses FuzzParse's seed corpus the way the fuzz
// target does, one input per op: ns/op is the inverse of the fuzzer's
// exec/s on one core, without coverage instrumentation. The recipe fuzz
// figures in docs/testing.md come with it.
func BenchmarkParseSeeds(b *testing.B) {
	inputs := seedFiles(b, parseSeedGlobs...)
	name := filepath.Join("testdata", "valid", "fuzz.hcl")
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		Parse(name, inputs[i%len(inputs)], LoadOptions{Library: testLibrary, Vars: []string{"release=1.0.0"}})
	}
}
