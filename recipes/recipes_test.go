package recipes

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestLoadValid(t *testing.T) {
	abs := func(p string) string {
		a, err := filepath.Abs(p)
		require.NoError(t, err)
		return a
	}
	for _, tc := range []struct {
		file  string
		opts  LoadOptions
		check func(t *testing.T, r *Recipe)
	}{
		{
			file: "minimal.hcl",
			check: func(t *testing.T, r *Recipe) {
				require.Equal(t, "", r.RequiredVersion)
				require.Empty(t, r.Variables)
				img := r.Image
				require.Equal(t, "minimal", img.Name)
				require.Equal(t, "0.1.0", img.Version)
				require.Equal(t, "", img.Description)
				require.Equal(t, Range{Filename: "testdata/valid/minimal.hcl", Line: 2, Column: 1}, img.Range)
				require.Equal(t, Base{Type: "debian", Suite: "bookworm", Variant: "minbase", Arch: "amd64",
					Components: []string{"main"}, Packages: []string{}, InitramfsModules: "vm",
					Range: Range{Filename: "testdata/valid/minimal.hcl", Line: 4, Column: 3}}, img.Base)
				require.Equal(t, Boot{Firmware: "hybrid", KernelCmdline: []string{}, SecureBoot: "off"}, img.Boot, "defaults, zero Range")
				require.Equal(t, Disk{Size: 2 << 30, Table: "gpt", ESPSize: 256 << 20, Headroom: 20, Grow: true, ESPAutomount: true, Partitions: []Partition{}}, img.Disk)
				require.Equal(t, defaultOutput(), img.Output)
				require.Empty(t, img.Build)
				require.Empty(t, img.Tests)
			},
		},
		{
			file: "full.hcl",
			check: func(t *testing.T, r *Recipe) {
				f := "testdata/valid/full.hcl"
				require.Equal(t, ">= 0.1, < 1.0", r.RequiredVersion)
				img := r.Image
				require.Equal(t, "full.image_1", img.Name)
				require.Equal(t, "2.10.3", img.Version)
				require.Equal(t, "Every argument set", img.Description)
				require.Equal(t, Base{Type: "debian", Suite: "trixie", Mirror: "http://mirror.example/debian", Variant: "standard", Arch: "amd64",
					Components: []string{"main", "contrib", "non-free-firmware"}, Packages: []string{"curl", "ca-certificates"}, InitramfsModules: "most",
					Range: Range{f, 8, 3}}, img.Base)
				require.Equal(t, Boot{Firmware: "uefi", KernelCmdline: []string{"console=ttyS0", "quiet"}, SecureBoot: "off", MenuTimeout: 5 * time.Second, UpdateAtFirstBoot: true, Range: Range{f, 18, 3}}, img.Boot)
				require.Equal(t, Disk{Size: 4 << 30, Table: "gpt", ESPSize: 64 << 20, Headroom: 20, Grow: true, ESPAutomount: true, Partitions: []Partition{}, Range: Range{f, 25, 3}}, img.Disk)
				require.Equal(t, shellSteps(
					Step{Name: "packages", Action: inline("apt-get update", "apt-get install -y jq"),
						Environment: map[string]string{"DEBIAN_FRONTEND": "noninteractive", "RETRIES": "3"}, Policy: Policy{Timeout: 45 * time.Minute}, Range: Range{f, 31, 3}},
					Step{Name: "setup", Action: script(abs("testdata/valid/scripts/setup.sh")), Environment: map[string]string{},
						Policy: Policy{Timeout: 30 * time.Minute}, Range: Range{f, 37, 3}},
				), img.Build)
				require.Equal(t, shellSteps(
					Step{Name: "jq", Action: inline("jq --version"), Environment: map[string]string{}, Policy: Policy{Timeout: 90 * time.Second}, Range: Range{f, 41, 3}},
					Step{Name: "setup", Action: script(abs("testdata/valid/scripts/setup.sh")), Environment: map[string]string{},
						Policy: Policy{Timeout: 5 * time.Minute}, Range: Range{f, 47, 3}},
				), img.Tests)
				want := defaultOutput()
				want.Range = Range{f, 51, 3}
				require.Equal(t, want, img.Output)
			},
		},
		{
			file: "variables.hcl",
			opts: LoadOptions{Library: testLibrary, Vars: []string{"release=3.2.1"}},
			check: func(t *testing.T, r *Recipe) {
				require.Equal(t, map[string]any{
					"suite":          "bookworm",
					"disk_bytes":     int64(3221225472),
					"serial_console": true,
					"packages":       []any{"curl", "jq"},
					"step_env":       map[string]any{"GREETING": "hello"},
					"anything":       map[string]any{"nested": []any{int64(1), 2.5, true}, "name": "x"},
					"untyped":        "raw",
					"release":        "3.2.1",
				}, r.Variables)
				_, err := json.Marshal(r.Variables)
				require.NoError(t, err, "variables go into the manifest")
				img := r.Image
				require.Equal(t, "3.2.1", img.Version)
				require.Equal(t, "BUILT FROM BOOKWORM", img.Description)
				require.Equal(t, "bookworm", img.Base.Suite)
				require.Equal(t, []string{"curl", "jq"}, img.Base.Packages)
				require.Equal(t, []string{"console=ttyS0"}, img.Boot.KernelCmdline)
				require.Equal(t, uint64(3<<30), img.Disk.Size)
				require.Equal(t, []string{"echo hello > /etc/greeting", "echo x"}, img.Build[0].Action.Shell.Inline)
				require.Equal(t, map[string]string{"GREETING": "hello"}, img.Build[0].Environment)
				require.Equal(t, []string{"raw"}, img.Output.Formats)
			},
		},
		{
			file: "varfile.hcl",
			opts: LoadOptions{Library: testLibrary, VarFiles: []string{"testdata/vars/prod.hcl"}},
			check: func(t *testing.T, r *Recipe) {
				require.Equal(t, map[string]any{"suite": "trixie", "packages": []any{"nginx", "curl"}, "size": "8GiB"}, r.Variables)
				require.Equal(t, "trixie", r.Image.Base.Suite)
				require.Equal(t, []string{"nginx", "curl"}, r.Image.Base.Packages)
				require.Equal(t, uint64(8<<30), r.Image.Disk.Size)
			},
		},
		{
			file: "disk_bytes.hcl",
			check: func(t *testing.T, r *Recipe) {
				require.Equal(t, uint64(1<<30), r.Image.Disk.Size)
				require.Equal(t, uint64(201<<19), r.Image.Disk.ESPSize)
				require.False(t, r.Image.Disk.ESPAutomount)
				require.Equal(t, "stable", r.Image.Base.Suite)
				require.Equal(t, DefaultTestTimeout, r.Image.Tests[0].Timeout)
			},
		},
		{
			file: "locals.hcl",
			opts: LoadOptions{Library: testLibrary, Vars: []string{"extra_packages=[\"jq\", \"git\"]"}},
			check: func(t *testing.T, r *Recipe) {
				img := r.Image
				setup, err := os.ReadFile("testdata/valid/scripts/setup.sh")
				require.NoError(t, err)
				sum := sha256.Sum256(setup)
				require.Equal(t, "web-trixie: curl, jq, git ("+hex.EncodeToString(sum[:])+")", img.Description)
				require.Equal(t, []string{"curl", "jq", "git"}, img.Base.Packages)
				require.Equal(t, uint64(2051<<20), img.Disk.Size)
				require.Equal(t, map[string]string{"SUITE": "TRIXIE", "TOKEN": "not-a-real-token"}, img.Build[0].Environment)
				sensitive := map[string]bool{}
				for _, l := range r.Locals {
					sensitive[l.Name] = l.Sensitive
				}
				require.Equal(t, map[string]bool{"name": false, "packages": false, "env": true, "setup": false, "size": false}, sensitive)
				require.Equal(t, []Variable{
					{Name: "suite", Type: "string", Source: "default", Range: Range{"testdata/valid/locals.hcl", 3, 1}},
					{Name: "extra_packages", Type: "list(string)", Source: "-var", Range: Range{"testdata/valid/locals.hcl", 13, 1}},
					{Name: "token", Type: "string", Sensitive: true, Source: "default", Range: Range{"testdata/valid/locals.hcl", 18, 1}},
				}, r.Declared)
				require.Equal(t, map[string]string{abs("testdata/valid/scripts/setup.sh"): hex.EncodeToString(sum[:])}, r.ReadFiles)
			},
		},
		{
			file: "cache.hcl",
			check: func(t *testing.T, r *Recipe) {
				var noCache []bool
				for _, s := range r.Image.Build {
					noCache = append(noCache, s.NoCache)
				}
				require.Equal(t, []bool{false, true, false}, noCache)
			},
		},
	} {
		t.Run(tc.file, func(t *testing.T) {
			path := filepath.Join("testdata/valid", tc.file)
			r, files, diags := Load(path, tc.opts)
			require.Empty(t, diags, "%s", diags)
			require.NotNil(t, r)
			require.NotNil(t, files)
			src, err := os.ReadFile(path)
			require.NoError(t, err)
			sum := sha256.Sum256(src)
			require.Equal(t, hex.EncodeToString(sum[:]), r.SHA256)
			require.Equal(t, path, r.Path)
			require.Equal(t, abs("testdata/valid"), r.Dir)
			tc.check(t, r)
		})
	}
}

// Every file in testdata/valid is covered by TestLoadValid.
func TestEveryValidFileIsChecked(t *testing.T) {
	files, _ := filepath.Glob("testdata/valid/*.hcl")
	require.Len(t, files, 8, "add the new file to TestLoadValid (layout.hcl is TestLoadLayout's)")
}

func TestRangeString(t *testing.T) {
	require.Equal(t, "a/b.hcl:12:3", Range{Filename: "a/b.hcl", Line: 12, Column: 3}.String())
}

func TestRequiredVersionConstraints(t *testing.T) {
	v := func(s string) version { x, n := parseVersion(s); require.NotZero(t, n, s); return x }
	for _, tc := range []struct {
		constraint string
		version    string
		ok         bool
	}{
		{">= 0.1", "0.1", true},
		{">= 0.1", "0.1.5", true},
		{">= 0.2", "0.1", false},
		{"> 0.1", "0.1", false},
		{"> 0.1", "0.1.1", true},
		{"< 1.0", "0.1", true},
		{"<= 0.1", "0.1", true},
		{"= 0.1", "0.1.0", true},
		{"0.1", "0.1", true},
		{"!= 0.1", "0.1", false},
		{">= 0.1, < 0.2", "0.1.9", true},
		{">= 0.1, < 0.2", "0.2", false},
		{"~> 0.1", "0.9", true},
		{"~> 0.1", "1.0", false},
		{"~> 0.1.2", "0.1.5", true},
		{"~> 0.1.2", "0.2.0", false},
		{"~> 0.1.2", "0.1.1", false},
		{"~> 1", "1.9", true},
		{"~> 1", "2.0", false},
	} {
		cs, err := parseConstraints(tc.constraint)
		require.NoError(t, err, tc.constraint)
		ok := true
		for _, c := range cs {
			ok = ok && c.allows(v(tc.version))
		}
		require.Equal(t, tc.ok, ok, "%q against %s", tc.constraint, tc.version)
	}
	for _, bad := range []string{"", "newest", ">=", ">= 1.2.3.4", ">= v1", "=> 0.1", ">= 0.1,", ">= -1", ">= 1.x"} {
		_, err := parseConstraints(bad)
		require.Error(t, err, "%q", bad)
	}
}

// shellSteps fills in what every decoded shell step has: the default
// failure policy.
func shellSteps(steps ...Step) []Step {
	for i := range steps {
		steps[i].OnFailure = Abort
	}
	return steps
}

func inline(lines ...string) Action {
	return Action{Kind: KindShell, Shell: &Shell{Inline: lines}}
}

func script(path string) Action { return Action{Kind: KindShell, Shell: &Shell{Script: path}} }
