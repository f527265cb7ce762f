package nocloud

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/kiln-build/kiln/internal/testutil"
	"github.com/stretchr/testify/require"
)

const userData = "#cloud-config\nwrite_files:\n  - path: /etc/kiln-seed-test\n    content: |\n      written by cloud-init\n"

// The seed is an ISO 9660 filesystem labelled cidata, as isoinfo and blkid
// (the tools cloud-init's device search relies on) see it, with user-data
// and meta-data under their own names and contents.
func TestSeedIsACidataISO(t *testing.T) {
	testutil.Require(t, "isoinfo", "blkid")
	path := filepath.Join(t.TempDir(), "seed.iso")
	s := Seed{UserData: []byte(userData), InstanceID: "kiln-0123456789abcdef", Hostname: "box"}
	require.NoError(t, Write(path, s))

	info := isoinfo(t, "-d", "-i", path)
	require.Regexp(t, regexp.MustCompile(`(?m)^Volume id: cidata$`), info)
	require.Contains(t, info, "Rock Ridge signatures version 1 found")
	require.Contains(t, info, "NO Joliet present")

	names := isoinfo(t, "-R", "-f", "-i", path)
	require.ElementsMatch(t, []string{"/user-data", "/meta-data"}, strings.Fields(names))
	require.Equal(t, userData, isoinfo(t, "-R", "-x", "/user-data", "-i", path))
	require.Equal(t, "instance-id: kiln-0123456789abcdef\nlocal-hostname: box\n", isoinfo(t, "-R", "-x", "/meta-data", "-i", path))

	out, err := exec.Command("blkid", "-p", "-o", "export", path).CombinedOutput()
	require.NoError(t, err, string(out))
	require.Contains(t, string(out), "LABEL=cidata\n")
	require.Contains(t, string(out), "TYPE=iso9660\n")

	fi, err := os.Stat(path)
	require.NoError(t, err)
	require.Less(t, fi.Size(), int64(1<<20), "the image is trimmed to its content")
	left, _ := filepath.Glob(filepath.Join(filepath.Dir(path), ".nocloud-*"))
	require.Empty(t, left, "no work directory is left")
}

func isoinfo(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("isoinfo", args...).Output()
	require.NoError(t, err, "isoinfo %v", args)
	return string(out)
}

func TestWriteNeedsAnInstanceID(t *testing.T) {
	require.ErrorContains(t, Write(filepath.Join(t.TempDir(), "s.iso"), Seed{UserData: []byte(userData)}), "instance-id")
}

func TestNewInstanceID(t *testing.T) {
	a, b := NewInstanceID(), NewInstanceID()
	require.Regexp(t, `^kiln-[0-9a-f]{16}$`, a)
	require.NotEqual(t, a, b)
}

func TestCheckUserData(t *testing.T) {
	for _, ok := range []string{"#cloud-config\n{}", "#!/bin/sh\necho hi", "Content-Type: multipart/mixed; boundary=x\n", "\x1f\x8b\x08rest"} {
		require.NoError(t, CheckUserData([]byte(ok)), ok)
	}
	require.ErrorContains(t, CheckUserData([]byte("  \n")), "empty")
	err := CheckUserData([]byte("write_files:\n  - path: /x\n"))
	require.ErrorContains(t, err, `starts with "write_files:"`)
	require.ErrorContains(t, err, "#cloud-config")
}
