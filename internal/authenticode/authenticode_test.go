package authenticode

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"encoding/hex"
	"encoding/pem"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kiln-build/kiln/internal/testutil"
)

// testKey writes a fresh RSA key and self-signed certificate as PEM files.
func testKey(t *testing.T, dir, cn string) (*KeyPair, string, string) {
	t.Helper()
	key, cert := testutil.RSACert(t, pkix.Name{CommonName: cn, Organization: []string{"Kiln Test"}, Country: []string{"DE"}}, nil, nil)
	keyPath, certPath := filepath.Join(dir, cn+".key"), filepath.Join(dir, cn+".pem")
	require.NoError(t, os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}), 0o600))
	require.NoError(t, os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}), 0o644))
	kp, err := LoadKeyPair(mustRead(t, keyPath), mustRead(t, certPath))
	require.NoError(t, err)
	return kp, keyPath, certPath
}

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	require.NoError(t, err)
	return b
}

// Kiln's signature verifies with sbverify and osslsigncode against the
// certificate, and re-signing a signed image leaves exactly one signature.
func TestSignJudgedBySbverifyAndOsslsigncode(t *testing.T) {
	testutil.Require(t, "sbverify", "osslsigncode")
	dir := t.TempDir()
	kp, _, certPath := testKey(t, dir, "Kiln Test Signer")
	signed, err := Sign(testutil.TinyPE(), kp)
	require.NoError(t, err)
	file := filepath.Join(dir, "signed.efi")
	require.NoError(t, os.WriteFile(file, signed, 0o644))

	require.Contains(t, testutil.Run(t, "sbverify", "--cert", certPath, file), "Signature verification OK")
	out := testutil.Run(t, "osslsigncode", "verify", "-CAfile", certPath, "-in", file)
	require.Contains(t, out, "Signature verification: ok")
	current := regexp.MustCompile(`Current message digest\s*:\s*([0-9A-F]+)`).FindStringSubmatch(out)
	calculated := regexp.MustCompile(`Calculated message digest\s*:\s*([0-9A-F]+)`).FindStringSubmatch(out)
	require.NotNil(t, current, out)
	require.NotNil(t, calculated, out)
	require.Equal(t, current[1], calculated[1])
	digest, err := Digest(signed)
	require.NoError(t, err)
	require.Equal(t, calculated[1], strings.ToUpper(hex.EncodeToString(digest)), "osslsigncode computes the same image digest")

	// Another key's signature replaces the first.
	kp2, _, cert2 := testKey(t, dir, "Second Signer")
	resigned, err := Sign(signed, kp2)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(file, resigned, 0o644))
	require.Contains(t, testutil.Run(t, "sbverify", "--cert", cert2, file), "Signature verification OK")
	require.Error(t, exec.Command("sbverify", "--cert", certPath, file).Run(), "the first signature is gone")
	list := testutil.Run(t, "sbverify", "--list", file)
	require.Len(t, regexp.MustCompile(`(?m)^signature \d+$`).FindAllString(list, -1), 1, list)
}

// sbverifyList parses `sbverify --list`: the issuer and the signer's
// subject of each signature (the certificate whose issuer is the
// signature's issuer).
func sbverifyList(t *testing.T, file string) []Signer {
	out := testutil.Run(t, "sbverify", "--list", file)
	var signers []Signer
	var issuer string
	var subject string
	for _, line := range strings.Split(out, "\n") {
		line = strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(line, "signature "):
			signers = append(signers, Signer{})
		case strings.HasPrefix(line, "- /"):
			issuer = strings.TrimPrefix(line, "- ")
			signers[len(signers)-1].Issuer = issuer
		case strings.HasPrefix(line, "- subject: "):
			subject = strings.TrimPrefix(line, "- subject: ")
		case strings.HasPrefix(line, "issuer:"):
			if strings.TrimSpace(strings.TrimPrefix(line, "issuer:")) == signers[len(signers)-1].Issuer && signers[len(signers)-1].Subject == "" {
				signers[len(signers)-1].Subject = subject
			}
		}
	}
	for i := range signers {
		signers[i].DigestOK = true
	}
	return signers
}

// Signers reads what sbsign and osslsigncode wrote: two signatures in two
// certificate table entries, and a nested one, as sbverify lists them.
func TestSignersMatchSbverify(t *testing.T) {
	testutil.Require(t, "sbsign", "sbverify", "osslsigncode")
	dir := t.TempDir()
	_, key1, cert1 := testKey(t, dir, "First Signer")
	_, key2, cert2 := testKey(t, dir, "Second Signer")
	unsigned := filepath.Join(dir, "unsigned.efi")
	require.NoError(t, os.WriteFile(unsigned, testutil.TinyPE(), 0o644))
	signers, err := Signers(testutil.TinyPE())
	require.NoError(t, err)
	require.Empty(t, signers)

	one := filepath.Join(dir, "one.efi")
	testutil.Run(t, "sbsign", "--key", key1, "--cert", cert1, "--output", one, unsigned)
	two := filepath.Join(dir, "two.efi")
	testutil.Run(t, "sbsign", "--key", key2, "--cert", cert2, "--output", two, one)
	for _, f := range []string{one, two} {
		got, err := Signers(mustRead(t, f))
		require.NoError(t, err)
		require.Equal(t, sbverifyList(t, f), got, f)
	}
	got, err := Signers(mustRead(t, two))
	require.NoError(t, err)
	require.Len(t, got, 2)
	require.Equal(t, "/CN=Second Signer/O=Kiln Test/C=DE", reorder(got[1].Subject))

	nested := filepath.Join(dir, "nested.efi")
	testutil.Run(t, "osslsigncode", "sign", "-nest", "-h", "sha256", "-certs", cert2, "-key", key2, "-in", one, "-out", nested)
	got, err = Signers(mustRead(t, nested))
	require.NoError(t, err)
	require.Len(t, got, 2, "the outer signature and the nested one")
	require.Contains(t, got[0].Subject, "CN=First Signer")
	require.Contains(t, got[1].Subject, "CN=Second Signer")
	require.True(t, got[0].DigestOK && got[1].DigestOK)

	// A changed byte in the code is seen: the digests no longer match.
	data := mustRead(t, one)
	data[0x200] ^= 0xff
	got, err = Signers(data)
	require.NoError(t, err)
	require.Len(t, got, 1)
	require.False(t, got[0].DigestOK)
}

// reorder puts a one-line name's components into a fixed order for comparison.
func reorder(s string) string {
	parts := strings.Split(strings.TrimPrefix(s, "/"), "/")
	order := map[string]int{"CN": 0, "O": 1, "C": 2}
	out := make([]string, 3)
	for _, p := range parts {
		k, _, _ := strings.Cut(p, "=")
		out[order[k]] = p
	}
	return "/" + strings.Join(out, "/")
}

func TestLoadKeyPairErrors(t *testing.T) {
	dir := t.TempDir()
	_, keyPath, certPath := testKey(t, dir, "A")
	_, key2, _ := testKey(t, dir, "B")
	_, err := LoadKeyPair(mustRead(t, key2), mustRead(t, certPath))
	require.ErrorIs(t, err, ErrKeyMismatch)

	_, err = LoadKeyPair([]byte("-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n"), mustRead(t, certPath))
	require.ErrorIs(t, err, ErrEncryptedKey)
	legacy := "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,00000000000000000000000000000000\n\nAAAA\n-----END RSA PRIVATE KEY-----\n"
	_, err = LoadKeyPair([]byte(legacy), mustRead(t, certPath))
	require.ErrorIs(t, err, ErrEncryptedKey)
	_, err = LoadKeyPair(mustRead(t, certPath), mustRead(t, certPath))
	require.ErrorContains(t, err, "no PEM private key")
	_, err = LoadKeyPair(mustRead(t, keyPath), mustRead(t, keyPath))
	require.ErrorContains(t, err, "no PEM certificate")
	if _, err := os.Stat("/usr/share/ovmf/PkKek-1-snakeoil.key"); err == nil {
		// Debian's snakeoil key is passphrase-protected PKCS#8.
		_, err = ParseKey(mustRead(t, "/usr/share/ovmf/PkKek-1-snakeoil.key"))
		require.ErrorIs(t, err, ErrEncryptedKey)
	}
}

func TestNotPE(t *testing.T) {
	for _, data := range [][]byte{nil, []byte("MZ"), []byte("not a pe image at all, not even close to one.................................")} {
		_, err := Signers(data)
		require.ErrorIs(t, err, ErrNotPE)
		_, err = Digest(data)
		require.ErrorIs(t, err, ErrNotPE)
	}
	pe := testutil.TinyPE()
	binary.LittleEndian.PutUint32(pe[0x44+20+112+8*certDirIndex:], 0x300)
	binary.LittleEndian.PutUint32(pe[0x44+20+112+8*certDirIndex+4:], 0x1000)
	_, err := Signers(pe)
	require.ErrorContains(t, err, "runs past the end")
}

// Hostile images never panic the reader.
func FuzzSigners(f *testing.F) {
	f.Add(testutil.TinyPE())
	f.Fuzz(func(t *testing.T, data []byte) {
		_, _ = Signers(data)
		_, _ = Digest(data)
	})
}
