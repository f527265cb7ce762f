package boottest

import (
	"encoding/xml"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/kiln-build/kiln/internal/guest"
	"github.com/kiln-build/kiln/manifest"
	"github.com/kiln-build/kiln/recipes"
	"github.com/stretchr/testify/require"
)

func TestHealthChecksAreNamedAndSkippable(t *testing.T) {
	rep := guest.Report{Finished: true, TargetState: "active", FailedUnits: "broken.service loaded failed failed"}
	h := manifest.Health{Firmware: "uefi", MultiUser: true}
	evaluateHealth(&h, rep, false, time.Minute, nil)
	require.Len(t, h.Problems, 1)
	require.Contains(t, h.Problems[0], "broken.service")
	var names []string
	for _, c := range h.Checks {
		names = append(names, c.Name)
	}
	require.Equal(t, append([]string{checkFinished}, recipes.HealthChecks...), names, "every check the recipe may skip is reported")

	skipped := manifest.Health{Firmware: "uefi", MultiUser: true}
	evaluateHealth(&skipped, rep, false, time.Minute, []string{"failed-units"})
	require.Empty(t, skipped.Problems)
	require.Equal(t, manifest.Skipped, skipped.Checks[2].Status)
	require.Contains(t, skipped.Checks[2].Detail, "broken.service")

	// A guest that never finished fails whatever the recipe skips.
	dead := manifest.Health{Firmware: "bios"}
	evaluateHealth(&dead, guest.Report{}, true, time.Minute, recipes.HealthChecks)
	require.Len(t, dead.Problems, 1)
	require.Contains(t, dead.Problems[0], "did not finish within 1m0s")

	path := filepath.Join(t.TempDir(), "tests.xml")
	require.NoError(t, WriteJUnit(path, "img", []manifest.TestResult{{Name: "t1", Firmware: "uefi", Status: "pass"}}, []manifest.Health{h, skipped}))
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	var ts struct {
		Tests    int `xml:"tests,attr"`
		Failures int `xml:"failures,attr"`
		Skipped  int `xml:"skipped,attr"`
		Cases    []struct {
			Name    string    `xml:"name,attr"`
			Failure *struct{} `xml:"failure"`
			Skipped *struct{} `xml:"skipped"`
		} `xml:"testcase"`
	}
	require.NoError(t, xml.Unmarshal(data, &ts))
	require.Equal(t, 9, ts.Tests)
	require.Equal(t, 1, ts.Failures)
	require.Equal(t, 1, ts.Skipped)
	require.Equal(t, "health/failed-units", ts.Cases[2].Name)
	require.NotNil(t, ts.Cases[2].Failure)
	require.NotNil(t, ts.Cases[6].Skipped)
}
