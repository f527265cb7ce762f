package attest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
)

// GenerateKey makes an ECDSA P-256 key pair.
func GenerateKey() (*ecdsa.PrivateKey, error) {
	return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
}

// MarshalPrivateKey is k as a PEM "PRIVATE KEY" block (PKCS#8, unencrypted),
// the form openssl genpkey writes and cosign import-key-pair reads.
func MarshalPrivateKey(k *ecdsa.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// MarshalPublicKey is pub as a PEM "PUBLIC KEY" block (PKIX), the form
// openssl and cosign read.
func MarshalPublicKey(pub *ecdsa.PublicKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), nil
}

// ErrKey is wrapped by the key parsers' errors.
var ErrKey = errors.New("not an ECDSA P-256 key")

// ParsePrivateKey reads a PEM private key: PKCS#8 ("PRIVATE KEY") or SEC 1
// ("EC PRIVATE KEY"), unencrypted, on the P-256 curve.
func ParsePrivateKey(data []byte) (*ecdsa.PrivateKey, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, fmt.Errorf("%w: no PEM block", ErrKey)
	}
	var key any
	var err error
	switch block.Type {
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(block.Bytes)
	case "ENCRYPTED PRIVATE KEY", "ENCRYPTED SIGSTORE PRIVATE KEY", "ENCRYPTED COSIGN PRIVATE KEY":
		return nil, fmt.Errorf("%w: the key is encrypted; Kiln reads unencrypted PKCS#8 keys (kiln keygen, or openssl pkey -in KEY -out PLAIN.pem)", ErrKey)
	default:
		return nil, fmt.Errorf("%w: a PEM %q block, not \"PRIVATE KEY\"", ErrKey, block.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrKey, err)
	}
	k, ok := key.(*ecdsa.PrivateKey)
	if !ok || k.Curve != elliptic.P256() {
		return nil, fmt.Errorf("%w: the key is %s", ErrKey, keyKind(key))
	}
	return k, nil
}

// ParsePublicKey reads a PEM "PUBLIC KEY" block (PKIX) on the P-256 curve.
func ParsePublicKey(data []byte) (*ecdsa.PublicKey, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, fmt.Errorf("%w: no PEM block", ErrKey)
	}
	if block.Type != "PUBLIC KEY" {
		return nil, fmt.Errorf("%w: a PEM %q block, not \"PUBLIC KEY\" (give the public half, such as kiln.pub)", ErrKey, block.Type)
	}
	key, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrKey, err)
	}
	k, ok := key.(*ecdsa.PublicKey)
	if !ok || k.Curve != elliptic.P256() {
		return nil, fmt.Errorf("%w: the key is %s", ErrKey, keyKind(key))
	}
	return k, nil
}

func keyKind(key any) string {
	switch k := key.(type) {
	case *ecdsa.PrivateKey:
		return "ECDSA on " + k.Curve.Params().Name
	case *ecdsa.PublicKey:
		return "ECDSA on " + k.Curve.Params().Name
	}
	return fmt.Sprintf("%T", key)
}

// KeyID names a public key: the base64 SHA-256 of its PKIX encoding, the
// hint a Sigstore bundle carries.
func KeyID(pub *ecdsa.PublicKey) string {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return ""
	}
	sum := sha256.Sum256(der)
	return base64.StdEncoding.EncodeToString(sum[:])
}
