package secrets

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/md5"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func write(t *testing.T, tree, p string, data []byte) {
	t.Helper()
	full := filepath.Join(tree, p)
	require.NoError(t, os.MkdirAll(filepath.Dir(full), 0o755))
	require.NoError(t, os.WriteFile(full, data, 0o600))
}

func pkcs8Key(t *testing.T) []byte {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	der, err := x509.MarshalPKCS8PrivateKey(k)
	require.NoError(t, err)
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

// opensshLike is shaped like an OpenSSH private key; the lint judges the
// shape, not whether the key parses.
func opensshLike() []byte {
	raw := make([]byte, 400)
	_, _ = rand.Read(raw)
	b := base64.StdEncoding.EncodeToString(raw)
	var lines []string
	for len(b) > 70 {
		lines = append(lines, b[:70])
		b = b[70:]
	}
	lines = append(lines, b)
	return []byte("-----BEGIN OPENSSH PRIVATE KEY-----\n" + strings.Join(lines, "\n") + "\n-----END OPENSSH PRIVATE KEY-----\n")
}

func TestScanFindsAndExcuses(t *testing.T) {
	tree := t.TempDir()
	key := pkcs8Key(t)
	write(t, tree, "root/.ssh/id_ed25519", opensshLike())
	write(t, tree, "etc/app/tls.key", key)
	write(t, tree, "etc/ssl/certs/ca.pem", []byte("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"))
	// ssh-keygen holds the markers as constants, with no key between them.
	write(t, tree, "usr/bin/ssh-keygen", []byte("\x7fELF\x00-----BEGIN OPENSSH PRIVATE KEY-----\n\x00-----END OPENSSH PRIVATE KEY-----\n\x00"))
	// A test key a package ships unchanged is public; the same file changed is not.
	write(t, tree, "usr/share/doc/pkg/examples/test.key", key)
	write(t, tree, "usr/share/doc/pkg/examples/changed.key", key)
	sum := md5.Sum(key)
	write(t, tree, "var/lib/dpkg/status", []byte("Package: pkg\nStatus: install ok installed\nVersion: 1\nArchitecture: all\n"))
	write(t, tree, "var/lib/dpkg/info/pkg.md5sums", []byte(hex.EncodeToString(sum[:])+"  usr/share/doc/pkg/examples/test.key\n"+
		"00000000000000000000000000000000  usr/share/doc/pkg/examples/changed.key\n"+
		hex.EncodeToString(sum[:])+"  usr/lib/python3/dist-packages/m/tests/test_k.py\n"))
	// Byte-code compiled at install time from an unchanged package file.
	write(t, tree, "usr/lib/python3/dist-packages/m/tests/test_k.py", key)
	write(t, tree, "usr/lib/python3/dist-packages/m/tests/__pycache__/test_k.cpython-311.pyc", append([]byte("\x00pyc"), key...))
	write(t, tree, "usr/lib/python3/dist-packages/m/tests/__pycache__/other.cpython-311.pyc", append([]byte("\x00pyc"), key...))
	write(t, tree, "etc/ssh/ssh_host_ed25519_key", []byte("anything"))
	write(t, tree, "etc/ssh/ssh_host_ed25519_key.pub", []byte("ssh-ed25519 AAAA"))
	write(t, tree, "root/.aws/credentials", []byte("[default]\naws_secret_access_key = x\n"))
	write(t, tree, "home/u/.aws/credentials", nil) // empty: nothing in it
	write(t, tree, "root/.docker/config.json", []byte(`{"auths":{"registry.invalid":{"auth":"dTpw"}}}`))
	write(t, tree, "home/u/.docker/config.json", []byte(`{"auths":{},"credsStore":"pass"}`))
	write(t, tree, "root/.netrc", []byte("machine h login u password p\n"))
	write(t, tree, "home/u/.netrc", []byte("machine h login u\n"))
	write(t, tree, "etc/app/app.conf", []byte("token = s3cret-token-value\n"))
	write(t, tree, "etc/motd", []byte("hi there, pw\n"))
	write(t, tree, "root/.gnupg/secret.asc", []byte("-----BEGIN PGP PRIVATE KEY BLOCK-----\nVersion: x\n\n"+strings.Repeat("QUJD", 30)+"\n=abcd\n-----END PGP PRIVATE KEY BLOCK-----\n"))
	require.NoError(t, os.Symlink("/root/.ssh/id_ed25519", filepath.Join(tree, "etc/link")))

	rep, err := Scan(tree, Options{Values: map[string]string{"token": "s3cret-token-value", "pw": "pw"}, Allow: []string{"/etc/app/tls.*"}})
	require.NoError(t, err)
	var got []string
	for _, f := range rep.Findings {
		got = append(got, f.String())
	}
	require.Equal(t, []string{
		"/etc/app/app.conf: value of sensitive variable \"token\"",
		"/etc/ssh/ssh_host_ed25519_key: SSH host key (generalise removes them; a later step made it again)",
		"/root/.aws/credentials: AWS credentials file",
		"/root/.docker/config.json: Docker registry credentials",
		"/root/.gnupg/secret.asc: PGP private key",
		"/root/.netrc: .netrc with a password",
		"/root/.ssh/id_ed25519: OpenSSH private key",
		"/usr/lib/python3/dist-packages/m/tests/__pycache__/other.cpython-311.pyc: private key (PEM PRIVATE KEY)",
		"/usr/share/doc/pkg/examples/changed.key: private key (PEM PRIVATE KEY)",
	}, got, "sorted by path")
	require.Equal(t, []Finding{{"/etc/app/tls.key", "private key (PEM PRIVATE KEY)"}}, rep.Allowed)
	require.Equal(t, 3, rep.PackageFiles)
	require.Equal(t, []string{"pw"}, rep.Short)
	require.Equal(t, 22, rep.Files)
}

// A key or a value across the boundary of two read chunks is found.
func TestScanAcrossChunks(t *testing.T) {
	oldChunk, oldOverlap := chunk, overlap
	chunk, overlap = 4096, 1024
	defer func() { chunk, overlap = oldChunk, oldOverlap }()
	tree := t.TempDir()
	key := opensshLike()
	pad := make([]byte, 4096-300)
	for i := range pad {
		pad[i] = 'x'
	}
	write(t, tree, "var/blob", append(append(append([]byte{}, pad...), key...), []byte(strings.Repeat("y", 5000)+"value-across-chunks")...))
	rep, err := Scan(tree, Options{Values: map[string]string{"v": "value-across-chunks"}})
	require.NoError(t, err)
	require.Equal(t, []Finding{{"/var/blob", "OpenSSH private key"}, {"/var/blob", `value of sensitive variable "v"`}}, rep.Findings)
}

func TestCheckAllow(t *testing.T) {
	require.NoError(t, CheckAllow([]string{"/etc/ssl/private/*", "/root/.ssh/id_rsa"}))
	require.ErrorContains(t, CheckAllow([]string{"etc/x"}), "not an absolute path")
	require.ErrorContains(t, CheckAllow([]string{"/etc/[x"}), "syntax error")
}

// Keys made by openssl, in each PEM form it writes, are found.
func TestOpenSSLKeys(t *testing.T) {
	if _, err := exec.LookPath("openssl"); err != nil {
		if os.Getenv("KILN_REQUIRE_QEMU") == "1" {
			t.Fatal("openssl is missing (scripts/install-deps.sh installs it)")
		}
		t.Skip("openssl is not installed")
	}
	tree := t.TempDir()
	for name, args := range map[string][]string{
		"rsa.pem":     {"genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"},
		"ec.pem":      {"ecparam", "-name", "prime256v1", "-genkey", "-noout"},
		"ed25519.pem": {"genpkey", "-algorithm", "ed25519"},
		"enc.pem":     {"genpkey", "-algorithm", "ed25519", "-aes256", "-pass", "pass:x"},
	} {
		out, err := exec.Command("openssl", args...).Output()
		require.NoError(t, err, name)
		write(t, tree, "keys/"+name, out)
	}
	rep, err := Scan(tree, Options{})
	require.NoError(t, err)
	require.Equal(t, []Finding{
		{"/keys/ec.pem", "private key (PEM EC PRIVATE KEY)"},
		{"/keys/ed25519.pem", "private key (PEM PRIVATE KEY)"},
		{"/keys/enc.pem", "private key (PEM ENCRYPTED PRIVATE KEY)"},
		{"/keys/rsa.pem", "private key (PEM PRIVATE KEY)"},
	}, rep.Findings)
}
