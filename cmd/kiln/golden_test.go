package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"testing"

	"github.com/stretchr/testify/require"
)

// keyPaths lists every object key path of a JSON document ("disk.partitions[].mount").
func keyPaths(t *testing.T, data []byte) map[string]bool {
	var v any
	require.NoError(t, json.Unmarshal(data, &v))
	out := map[string]bool{}
	var walk func(prefix string, v any)
	walk = func(prefix string, v any) {
		switch x := v.(type) {
		case map[string]any:
			for k, e := range x {
				p := k
				if prefix != "" {
					p = prefix + "." + k
				}
				// Maps of user data (variables, parameters, files) have no fixed keys.
				if k == "variables" || k == "parameters" || k == "files" {
					out[p] = true
					continue
				}
				out[p] = true
				walk(p, e)
			}
		case []any:
			for _, e := range x {
				walk(prefix+"[]", e)
			}
		}
	}
	walk("", v)
	return out
}

// requireGoldenKeys checks a real build's manifest.json against the golden
// manifest (manifest/testdata): it holds no key the golden one lacks, and
// every top-level key but the optional parent.
func requireGoldenKeys(t *testing.T, dir string) {
	t.Helper()
	golden, err := os.ReadFile("../../manifest/testdata/manifest.golden.json")
	require.NoError(t, err)
	real, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
	require.NoError(t, err)
	want, got := keyPaths(t, golden), keyPaths(t, real)
	var extra, missing []string
	for k := range got {
		if !want[k] {
			extra = append(extra, k)
		}
	}
	var top map[string]json.RawMessage
	require.NoError(t, json.Unmarshal(golden, &top))
	for k := range top {
		if !got[k] && k != "parent" {
			missing = append(missing, k)
		}
	}
	sort.Strings(extra)
	sort.Strings(missing)
	require.Empty(t, extra, "manifest.json keys that the golden manifest does not have")
	require.Empty(t, missing, "top-level manifest.json keys missing")
}
