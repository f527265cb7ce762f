package pgp

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kiln-build/kiln/internal/testutil"
)

// gpgv, GnuPG's verifier, accepts Kiln's public key and detached
// signatures, and rejects a signature over changed data.
func TestSignaturesJudgedByGpgv(t *testing.T) {
	testutil.Require(t, "gpgv", "gpg")
	dir := t.TempDir()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	created := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	pub, err := PublicKey(key, "Kiln test key", created)
	require.NoError(t, err)
	keyring := filepath.Join(dir, "key.gpg")
	require.NoError(t, os.WriteFile(keyring, pub, 0o644))

	data := bytes.Repeat([]byte("a kernel, say\n"), 100000)
	sig, err := DetachedSignature(key, created, bytes.NewReader(data))
	require.NoError(t, err)
	again, err := DetachedSignature(key, created, bytes.NewReader(data))
	require.NoError(t, err)
	require.Equal(t, sig, again, "signatures are deterministic")
	file, sigFile := filepath.Join(dir, "vmlinuz"), filepath.Join(dir, "vmlinuz.sig")
	require.NoError(t, os.WriteFile(file, data, 0o644))
	require.NoError(t, os.WriteFile(sigFile, sig, 0o644))

	out, err := exec.Command("gpgv", "--keyring", keyring, sigFile, file).CombinedOutput()
	require.NoError(t, err, "%s", out)
	fp := strings.ToUpper(hex.EncodeToString(Fingerprint(&key.PublicKey, created)))
	require.Contains(t, string(out), "Good signature")
	require.Contains(t, strings.ReplaceAll(string(out), " ", ""), fp[len(fp)-16:], "the issuer is the key")

	// gpg reads the key packet, user ID and self-signature as a valid key.
	home := filepath.Join(dir, "gnupg")
	require.NoError(t, os.Mkdir(home, 0o700))
	out, err = exec.Command("gpg", "--homedir", home, "--batch", "--import", keyring).CombinedOutput()
	require.NoError(t, err, "%s", out)
	out, err = exec.Command("gpg", "--homedir", home, "--batch", "--with-colons", "--check-signatures").CombinedOutput()
	require.NoError(t, err, "%s", out)
	require.Contains(t, string(out), "fpr:::::::::"+fp+":")
	require.Contains(t, string(out), "sig:!:", "the self-signature verifies")
	require.Contains(t, string(out), "Kiln test key")

	data[7] ^= 1
	require.NoError(t, os.WriteFile(file, data, 0o644))
	out, err = exec.Command("gpgv", "--keyring", keyring, sigFile, file).CombinedOutput()
	require.Error(t, err)
	require.Contains(t, string(out), "BAD signature")
}
