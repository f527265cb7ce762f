package catalog

import (
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/kiln-build/kiln/internal/testutil"
	"github.com/stretchr/testify/require"
)

func stage(t *testing.T, root, content string) *Staging {
	s, err := NewStaging(root)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(s.Artifact, "disk.raw"), []byte(content), 0o644))
	return s
}

func TestPublishNumbersBuilds(t *testing.T) {
	root := t.TempDir()
	for want := 1; want <= 3; want++ {
		s := stage(t, root, "disk")
		n, path, err := s.Publish("img", "1.0.0", func(build int) error {
			return os.WriteFile(filepath.Join(s.Artifact, "manifest.json"), []byte(`{"build":`+itoa(build)+`}`), 0o644)
		})
		require.NoError(t, err)
		require.Equal(t, want, n)
		require.Equal(t, filepath.Join(root, "img", "1.0.0", itoa(want)), path)
		require.FileExists(t, filepath.Join(path, "manifest.json"))
		s.Discard()
	}
	entries, _ := os.ReadDir(filepath.Join(root, stagingDir))
	require.Empty(t, entries, "published builds leave no staging directories")
}

func TestConcurrentPublishGetsDistinctNumbers(t *testing.T) {
	root := t.TempDir()
	var wg sync.WaitGroup
	nums := make(chan int, 8)
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := stage(t, root, "disk")
			defer s.Discard()
			n, _, err := s.Publish("img", "1.0.0", func(int) error { time.Sleep(5 * time.Millisecond); return nil })
			require.NoError(t, err)
			nums <- n
		}()
	}
	wg.Wait()
	close(nums)
	seen := map[int]bool{}
	for n := range nums {
		require.False(t, seen[n], "build number %d handed out twice", n)
		seen[n] = true
	}
	builds, err := Builds(filepath.Join(root, "img", "1.0.0"))
	require.NoError(t, err)
	require.Equal(t, []int{1, 2, 3, 4, 5, 6, 7, 8}, builds)
}

func TestFailedFinalizePublishesNothing(t *testing.T) {
	root := t.TempDir()
	s := stage(t, root, "disk")
	_, _, err := s.Publish("img", "1.0.0", func(int) error { return os.ErrPermission })
	require.Error(t, err)
	s.Discard()
	builds, _ := Builds(filepath.Join(root, "img", "1.0.0"))
	require.Empty(t, builds)
	entries, _ := os.ReadDir(filepath.Join(root, stagingDir))
	require.Empty(t, entries)
}

// A staging directory whose process died (lock released) is swept; a live one is not.
func TestSweepRemovesOnlyDeadStagings(t *testing.T) {
	root := t.TempDir()
	live := stage(t, root, "live")
	defer live.Discard()

	// A process that creates a staging dir and is then SIGKILLed.
	testutil.KillChild(t, "TestSweepChild", []string{"KILN_ARTIFACT_CHILD=" + root}, 10*time.Second, func() bool {
		entries, _ := filepath.Glob(filepath.Join(root, stagingDir, "build-[0-9]*"))
		return len(entries) == 2 // both created (not build-born-* any more)
	})
	Sweep(root)
	entries, _ := os.ReadDir(filepath.Join(root, stagingDir))
	require.Len(t, entries, 1)
	require.Equal(t, filepath.Base(live.Dir), entries[0].Name())
}

func TestSweepChild(t *testing.T) {
	_, err := NewStaging(testutil.ChildEnv(t, "KILN_ARTIFACT_CHILD"))
	require.NoError(t, err)
	time.Sleep(time.Minute)
}

func itoa(i int) string { return strconv.Itoa(i) }
