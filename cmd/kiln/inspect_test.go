package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// kiln inspect shows the recipe resolved: components at the versions their
// constraints select, the planned layout, and where each variable's value
// came from.
func TestInspectExample(t *testing.T) {
	code, out, errOut := runKiln(t, "inspect", "--json", "../../examples/web-server.hcl", "-var", "suite=bookworm")
	require.Equal(t, exitOK, code, errOut)
	var doc inspection
	require.NoError(t, json.Unmarshal([]byte(out), &doc))
	require.Equal(t, "valid", doc.Status)
	require.Equal(t, "web-server", doc.Image.Name)
	require.Equal(t, []inspectedValue{{Name: "suite", Value: "bookworm", Source: "-var", At: "../../examples/web-server.hcl:11:1"}}, doc.Variables)
	require.Equal(t, "bookworm", doc.Base.Suite)
	var comps []string
	for _, c := range doc.Components {
		comps = append(comps, c.Name+" "+c.Constraint+" -> "+c.Version)
	}
	require.Equal(t, []string{"apt-packages 1.x.x -> 1.0.0", "static-site 1.0.x -> 1.0.0", "serial-console x.x.x -> 1.0.0"}, comps)
	require.True(t, doc.Disk.Default)
	require.Len(t, doc.Disk.Partitions, 2, "uefi on gpt: ESP and root")
	esp, root := doc.Disk.Partitions[0], doc.Disk.Partitions[1]
	require.Equal(t, inspectedPart{Number: 1, Label: "ESP", Type: "esp", Filesystem: "vfat", Mount: "/boot/efi", Options: "umask=0077,noauto,x-systemd.automount", Start: 1 << 20, Size: 256 << 20,
		GUID: esp.GUID, FSUUID: esp.FSUUID}, esp)
	require.Equal(t, uint64(2<<30-(1<<20)-(256<<20)-(1<<20)), root.Size, "the rest, less GPT's backup table")
	require.NotEmpty(t, esp.GUID)
	require.Empty(t, doc.NotReproducible)

	code, out, _ = runKiln(t, "inspect", "../../examples/custom-layout.hcl")
	require.Equal(t, exitOK, code)
	require.Contains(t, out, "auto (content + 20%) gpt")
	require.Regexp(t, `6\s+root\s+root\s+ext4\s+/\s+-\s+the rest`, out)
	require.Contains(t, out, "reproducible  yes")
}

// Sensitive values never show: not the variable, not a local computed from
// it, not a component parameter, not text that embeds it. timestamp() is
// reported as making the build not reproducible, and files read by file()
// are listed.
func TestInspectRedactsAndReports(t *testing.T) {
	dir := t.TempDir()
	secret := "hunter2-the-secret"
	require.NoError(t, os.WriteFile(filepath.Join(dir, "motd.txt"), []byte("hello\n"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "r.hcl"), []byte(`variable "password" {
  sensitive = true
}
locals {
  banner = "password is ${var.password}"
  motd   = file("motd.txt")
}
image "secret" {
  version     = "1.0.0"
  description = "${local.banner} at ${timestamp()}"
  base "debian" {
    suite = "trixie"
  }
  component "users" {
    version    = "1.x.x"
    parameters = { name = "admin", authorized_keys = ["ssh-ed25519 ${var.password} k"] }
  }
}
`), 0o644))
	recipe := filepath.Join(dir, "r.hcl")

	// Without the password the recipe is invalid, reported as kiln
	// validate reports it.
	code, out, _ := runKiln(t, "inspect", "--json", recipe)
	require.Equal(t, exitUsage, code)
	require.Contains(t, out, `"status": "invalid"`)
	require.Contains(t, out, "No value for required variable")

	for _, args := range [][]string{{"inspect", recipe}, {"inspect", "--json", recipe}} {
		t.Setenv("KILN_VAR_password", secret)
		code, out, errOut := runKiln(t, args...)
		require.Equal(t, exitOK, code, errOut)
		require.NotContains(t, out+errOut, "hunter2")
		require.Contains(t, out, "(sensitive)")
		require.Contains(t, out, "timestamp() in r.hcl")
		require.Contains(t, out, "motd.txt")
		if strings.Contains(args[1], "json") {
			var doc inspection
			require.NoError(t, json.Unmarshal([]byte(out), &doc))
			require.Equal(t, "(sensitive)", doc.Variables[0].Value)
			require.Equal(t, "KILN_VAR_password", doc.Variables[0].Source)
			require.True(t, doc.Locals[0].Sensitive)
			require.Equal(t, "(sensitive)", doc.Locals[0].Value)
			require.False(t, doc.Locals[1].Sensitive)
			require.Equal(t, "(sensitive)", doc.Components[0].Parameters["authorized_keys"])
			require.Equal(t, []string{"timestamp() in r.hcl"}, doc.NotReproducible)
			require.Contains(t, doc.FilesRead, "motd.txt")
		}
	}

}
