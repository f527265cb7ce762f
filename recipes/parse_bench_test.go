package recipes

import (
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkParseSeeds parses FuzzParse's seed corpus the way the fuzz
// target does; ns/op is per input, the inverse of the fuzzer's exec/s on
// one core without coverage instrumentation.
func BenchmarkParseSeeds(b *testing.B) {
	var seeds [][]byte
	for _, glob := range []string{"testdata/valid/*.hcl", "testdata/errors/*.hcl", "testdata/vars/*.hcl", "../examples/*.hcl"} {
		files, _ := filepath.Glob(glob)
		for _, f := range files {
			src, err := os.ReadFile(f)
			if err != nil {
				b.Fatal(err)
			}
			seeds = append(seeds, src)
		}
	}
	name := filepath.Join("testdata", "valid", "fuzz.hcl")
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		Parse(name, seeds[i%len(seeds)], LoadOptions{Library: testLibrary, Vars: []string{"release=1.0.0"}})
	}
}
