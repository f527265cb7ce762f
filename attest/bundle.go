package attest

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
)

// BundleMediaType is the media type of a Sigstore bundle, version 0.3.
const BundleMediaType = "application/vnd.dev.sigstore.bundle.v0.3+json"

// Bundle is a Sigstore bundle (sigstore/protobuf-specs, sigstore_bundle.proto)
// holding a message signature over one file and the hint of the public
// key that made it: what cosign sign-blob --key --new-bundle-format
// --tlog-upload=false writes. It has no certificate and no transparency
// log entry; the verifier brings the public key.
type Bundle struct {
	MediaType            string               `json:"mediaType"`
	VerificationMaterial VerificationMaterial `json:"verificationMaterial"`
	MessageSignature     MessageSignature     `json:"messageSignature"`
}

// VerificationMaterial names the key.
type VerificationMaterial struct {
	PublicKey PublicKeyIdentifier `json:"publicKey"`
}

// PublicKeyIdentifier is the key's hint (KeyID).
type PublicKeyIdentifier struct {
	Hint string `json:"hint"`
}

// MessageSignature is the file's digest and the signature over the file.
type MessageSignature struct {
	MessageDigest HashOutput `json:"messageDigest"`
	Signature     string     `json:"signature"` // base64 ASN.1 ECDSA
}

// HashOutput is a digest, base64.
type HashOutput struct {
	Algorithm string `json:"algorithm"` // SHA2_256
	Digest    string `json:"digest"`
}

// SignBlob signs data's SHA-256 digest with key.
func SignBlob(data []byte, key *ecdsa.PrivateKey) (*Bundle, error) {
	sum := sha256.Sum256(data)
	sig, err := ecdsa.SignASN1(rand.Reader, key, sum[:])
	if err != nil {
		return nil, err
	}
	return &Bundle{
		MediaType:            BundleMediaType,
		VerificationMaterial: VerificationMaterial{PublicKey: PublicKeyIdentifier{Hint: KeyID(&key.PublicKey)}},
		MessageSignature: MessageSignature{
			MessageDigest: HashOutput{Algorithm: "SHA2_256", Digest: base64.StdEncoding.EncodeToString(sum[:])},
			Signature:     base64.StdEncoding.EncodeToString(sig),
		},
	}, nil
}

// Verify checks that the bundle signs data with pub.
func (b *Bundle) Verify(data []byte, pub *ecdsa.PublicKey) error {
	if b.MediaType != BundleMediaType {
		return fmt.Errorf("media type %q, not %q", b.MediaType, BundleMediaType)
	}
	sum := sha256.Sum256(data)
	if d := b.MessageSignature.MessageDigest; d.Algorithm != "SHA2_256" || d.Digest != base64.StdEncoding.EncodeToString(sum[:]) {
		return errors.New("its digest is not the file's sha256: the file changed after it was signed")
	}
	sig, err := base64.StdEncoding.DecodeString(b.MessageSignature.Signature)
	if err != nil || !ecdsa.VerifyASN1(pub, sum[:], sig) {
		return fmt.Errorf("%w %s (signed by key %s)", ErrBadSignature, KeyID(pub), b.VerificationMaterial.PublicKey.Hint)
	}
	return nil
}

// Encode is the bundle as written: indented JSON with a final newline.
func (b *Bundle) Encode() ([]byte, error) {
	var out bytes.Buffer
	enc := json.NewEncoder(&out)
	enc.SetIndent("", "  ")
	err := enc.Encode(b)
	return out.Bytes(), err
}
