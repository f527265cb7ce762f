package testutil

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// OpenSSLVerifyDSSE checks the first signature of the DSSE envelope file
// with `openssl dgst -sha256 -verify pub`, over the pre-authentication
// encoding built here from the DSSE specification ("DSSEv1" SP len(type)
// SP type SP len(body) SP body), not by Kiln's code. It returns openssl's
// output and whether it verified, and the envelope's decoded payload.
func OpenSSLVerifyDSSE(t testing.TB, envelope, pub string) (out string, ok bool, payload []byte) {
	t.Helper()
	var env struct {
		PayloadType string `json:"payloadType"`
		Payload     string `json:"payload"`
		Signatures  []struct {
			Sig string `json:"sig"`
		} `json:"signatures"`
	}
	data, err := os.ReadFile(envelope)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &env); err != nil || len(env.Signatures) == 0 {
		t.Fatalf("%s: not a signed DSSE envelope (%v)", envelope, err)
	}
	body, err := base64.StdEncoding.DecodeString(env.Payload)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	pae := fmt.Sprintf("DSSEv1 %d %s %d %s", len(env.PayloadType), env.PayloadType, len(body), body)
	if err := os.WriteFile(filepath.Join(dir, "pae"), []byte(pae), 0o644); err != nil {
		t.Fatal(err)
	}
	out, ok = opensslVerify(t, env.Signatures[0].Sig, filepath.Join(dir, "pae"), pub)
	return out, ok, body
}

// OpenSSLVerifyBundle checks a Sigstore bundle's message signature over
// file with openssl, and returns openssl's output and whether it verified.
func OpenSSLVerifyBundle(t testing.TB, bundle, file, pub string) (string, bool) {
	t.Helper()
	var b struct {
		MessageSignature struct {
			Signature string `json:"signature"`
		} `json:"messageSignature"`
	}
	data, err := os.ReadFile(bundle)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &b); err != nil {
		t.Fatal(err)
	}
	return opensslVerify(t, b.MessageSignature.Signature, file, pub)
}

// opensslVerify runs openssl dgst -sha256 -verify on a base64 ASN.1
// signature over file.
func opensslVerify(t testing.TB, sigB64, file, pub string) (string, bool) {
	Require(t, "openssl")
	sig, err := base64.StdEncoding.DecodeString(sigB64)
	if err != nil {
		t.Fatal(err)
	}
	sigPath := filepath.Join(t.TempDir(), "sig.der")
	if err := os.WriteFile(sigPath, sig, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("openssl", "dgst", "-sha256", "-verify", pub, "-signature", sigPath, file).CombinedOutput()
	return string(out), err == nil
}
