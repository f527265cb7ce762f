package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kiln-build/kiln/attest"
	"github.com/kiln-build/kiln/internal/testutil"
	"github.com/kiln-build/kiln/manifest"
)

func TestKeygen(t *testing.T) {
	dir := t.TempDir()
	prefix := filepath.Join(dir, "release")
	code, out, errOut := runKiln(t, "keygen", "--json", prefix)
	require.Equal(t, 0, code, errOut)
	var res map[string]string
	require.NoError(t, json.Unmarshal([]byte(out), &res))
	require.Equal(t, prefix+".key", res["private_key"])
	fi, err := os.Stat(prefix + ".key")
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), fi.Mode().Perm(), "the private key is readable by its owner only")
	fi, err = os.Stat(prefix + ".pub")
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o644), fi.Mode().Perm())
	priv, _ := os.ReadFile(prefix + ".key")
	k, err := attest.ParsePrivateKey(priv)
	require.NoError(t, err)
	require.Equal(t, attest.KeyID(&k.PublicKey), res["key_id"])

	code, _, errOut = runKiln(t, "keygen", prefix)
	require.Equal(t, 2, code)
	require.Contains(t, errOut, "exists; pass --force")
	again, _ := os.ReadFile(prefix + ".key")
	require.Equal(t, priv, again, "an existing key is never overwritten")
	code, _, _ = runKiln(t, "keygen", "--force", prefix)
	require.Equal(t, 0, code)
	again, _ = os.ReadFile(prefix + ".key")
	require.NotEqual(t, priv, again)

	// openssl reads both halves.
	testutil.Require(t, "openssl")
	require.Contains(t, testutil.Run(t, "openssl", "pkey", "-in", prefix+".key", "-noout", "-text"), "NIST CURVE: P-256")
	testutil.Run(t, "openssl", "pkey", "-pubin", "-in", prefix+".pub", "-noout")
}

func TestLoadSignKey(t *testing.T) {
	dir := t.TempDir()
	code, _, errOut := runKiln(t, "keygen", filepath.Join(dir, "k"))
	require.Equal(t, 0, code, errOut)
	t.Setenv(signKeyEnv, "")
	k, err := loadSignKey("")
	require.NoError(t, err)
	require.Nil(t, k, "no key, no signature")
	k, err = loadSignKey(filepath.Join(dir, "k.key"))
	require.NoError(t, err)
	require.NotNil(t, k)
	pem, _ := os.ReadFile(filepath.Join(dir, "k.key"))
	t.Setenv(signKeyEnv, string(pem))
	k2, err := loadSignKey("")
	require.NoError(t, err)
	require.True(t, k.Equal(k2), "KILN_SIGN_KEY may hold the PEM text")
	t.Setenv(signKeyEnv, filepath.Join(dir, "k.pub"))
	_, err = loadSignKey("")
	require.ErrorContains(t, err, "KILN_SIGN_KEY "+filepath.Join(dir, "k.pub"))
	_, err = loadSignKey(filepath.Join(dir, "missing.key"))
	require.ErrorContains(t, err, "--sign-key")
}

func TestVerifyKeyUsage(t *testing.T) {
	dir := t.TempDir()
	code, _, errOut := runKiln(t, "keygen", filepath.Join(dir, "k"))
	require.Equal(t, 0, code, errOut)
	pub := filepath.Join(dir, "k.pub")
	artifact := t.TempDir()
	m := &manifest.Manifest{SchemaVersion: manifest.SchemaVersion, Name: "old", Version: "1.0.0", Build: 1}
	require.NoError(t, m.Write(artifact))

	for _, c := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"verify", "--key", pub}, 2, "expected --key PUB and one ARTIFACT"},
		{[]string{"verify", "--key", pub, "--target", "qemu", artifact}, 2, "do not go together"},
		{[]string{"verify", "--key", filepath.Join(dir, "k.key"), artifact}, 2, "give the public half"},
		{[]string{"verify", "--key", filepath.Join(dir, "none.pub"), artifact}, 2, "no such file"},
		{[]string{"verify", "--key", pub, filepath.Join(dir, "nothing")}, 2, "no such build directory"},
		{[]string{"verify", "--key", pub, "--images", dir, "web@1.0.0/1"}, 2, "no build of web"},
		{[]string{"verify", "--key", pub, artifact}, 1, "provenance.dsse.json: the manifest names no provenance"},
	} {
		code, _, errOut := runKiln(t, c.args...)
		require.Equal(t, c.code, code, "%v: %s", c.args, errOut)
		require.Contains(t, errOut, c.msg, "%v", c.args)
	}
	code, out, _ := runKiln(t, "verify", "--json", "--key", pub, artifact)
	require.Equal(t, 1, code)
	var res map[string]any
	require.NoError(t, json.Unmarshal([]byte(out), &res))
	require.Equal(t, "failed", res["status"])
	require.Equal(t, "provenance.dsse.json", res["file"])
}
