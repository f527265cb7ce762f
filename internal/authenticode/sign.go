package authenticode

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
)

// Object identifiers of PKCS#7 and Authenticode.
var (
	oidSignedData       = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 2}
	oidSpcIndirectData  = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 311, 2, 1, 4}
	oidSpcPEImageData   = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 311, 2, 1, 15}
	oidSpcSpOpusInfo    = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 311, 2, 1, 12}
	oidNestedSignature  = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 311, 2, 4, 1}
	oidContentType      = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 3}
	oidMessageDigest    = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 4}
	oidSHA256           = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 1}
	oidSHA1             = asn1.ObjectIdentifier{1, 3, 14, 3, 2, 26}
	oidRSAEncryption    = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 1}
	oidSHA256WithRSA    = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 11}
	winCertRevision     = uint16(0x0200)
	winCertTypePKCSSign = uint16(0x0002)
)

// KeyPair is a signing key and its certificate. Only RSA keys are accepted:
// UEFI requires RSA-2048 with SHA-256 of every firmware, and GRUB's OpenPGP
// verifier (which Kiln's custom chain also uses) reads RSA keys.
type KeyPair struct {
	Key  *rsa.PrivateKey
	Cert *x509.Certificate
}

// Errors LoadKeyPair returns, for callers that explain them.
var (
	ErrEncryptedKey = errors.New("the private key is protected by a passphrase")
	ErrKeyMismatch  = errors.New("the private key does not belong to the certificate")
	ErrNotRSA       = errors.New("the key is not an RSA key")
)

// LoadKeyPair reads a PEM private key (PKCS#1 or PKCS#8, unencrypted) and a
// PEM certificate and checks that the key is the certificate's.
func LoadKeyPair(keyPEM, certPEM []byte) (*KeyPair, error) {
	key, err := ParseKey(keyPEM)
	if err != nil {
		return nil, err
	}
	cert, err := ParseCertificate(certPEM)
	if err != nil {
		return nil, err
	}
	pub, ok := cert.PublicKey.(*rsa.PublicKey)
	if !ok {
		return nil, fmt.Errorf("%w: the certificate holds a %T", ErrNotRSA, cert.PublicKey)
	}
	if !pub.Equal(&key.PublicKey) {
		return nil, ErrKeyMismatch
	}
	return &KeyPair{Key: key, Cert: cert}, nil
}

// pemBlocks returns every PEM block in data, in order.
func pemBlocks(data []byte) []*pem.Block {
	var out []*pem.Block
	for {
		var b *pem.Block
		if b, data = pem.Decode(data); b == nil {
			return out
		}
		out = append(out, b)
	}
}

// ParseKey reads an unencrypted RSA private key in PEM.
func ParseKey(data []byte) (*rsa.PrivateKey, error) {
	for _, b := range pemBlocks(data) {
		switch {
		case b.Type == "ENCRYPTED PRIVATE KEY", strings.Contains(b.Headers["Proc-Type"], "ENCRYPTED"):
			return nil, ErrEncryptedKey
		case b.Type == "RSA PRIVATE KEY":
			return x509.ParsePKCS1PrivateKey(b.Bytes)
		case b.Type == "PRIVATE KEY":
			k, err := x509.ParsePKCS8PrivateKey(b.Bytes)
			if err != nil {
				return nil, err
			}
			rk, ok := k.(*rsa.PrivateKey)
			if !ok {
				return nil, fmt.Errorf("%w: it is a %T", ErrNotRSA, k)
			}
			return rk, nil
		case strings.HasSuffix(b.Type, "PRIVATE KEY"):
			return nil, fmt.Errorf("%w: it is a %q block", ErrNotRSA, b.Type)
		}
	}
	return nil, errors.New("no PEM private key (a block such as -----BEGIN PRIVATE KEY-----) found")
}

// ParseCertificate reads the first PEM certificate in data.
func ParseCertificate(data []byte) (*x509.Certificate, error) {
	for _, b := range pemBlocks(data) {
		if b.Type == "CERTIFICATE" {
			return x509.ParseCertificate(b.Bytes)
		}
	}
	return nil, errors.New("no PEM certificate (-----BEGIN CERTIFICATE-----) found")
}

// Digest returns the SHA-256 Authenticode digest of a PE image.
func Digest(pe []byte) ([]byte, error) {
	img, err := parse(pe)
	if err != nil {
		return nil, err
	}
	h := sha256.New()
	for _, r := range img.digestRegions() {
		h.Write(r)
	}
	return h.Sum(nil), nil
}

// Sign returns pe signed with kp: any certificate table it had is replaced
// by one WIN_CERTIFICATE holding kp's signature (Linux's kexec and several
// firmwares read only the first entry, so Kiln writes exactly one). The
// image is padded to 8 bytes first, as the table must be aligned, and its
// PE checksum is updated.
func Sign(pe []byte, kp *KeyPair) ([]byte, error) {
	img, err := parse(pe)
	if err != nil {
		return nil, err
	}
	// Without its certificate table, padded to a quadword.
	end := len(pe)
	if img.certSize > 0 {
		end = int(img.certOff)
	}
	out := append([]byte(nil), pe[:end]...)
	for len(out)%8 != 0 {
		out = append(out, 0)
	}
	binary.LittleEndian.PutUint64(out[img.certDirOff:], 0)
	digest, err := Digest(out)
	if err != nil {
		return nil, err
	}
	p7, err := signedData(digest, kp)
	if err != nil {
		return nil, err
	}
	cert := make([]byte, 8, 8+len(p7)+8)
	binary.LittleEndian.PutUint32(cert[0:], uint32(8+len(p7)))
	binary.LittleEndian.PutUint16(cert[4:], winCertRevision)
	binary.LittleEndian.PutUint16(cert[6:], winCertTypePKCSSign)
	cert = append(cert, p7...)
	for len(cert)%8 != 0 {
		cert = append(cert, 0)
	}
	binary.LittleEndian.PutUint32(out[img.certDirOff:], uint32(len(out)))
	binary.LittleEndian.PutUint32(out[img.certDirOff+4:], uint32(len(cert)))
	out = append(out, cert...)
	binary.LittleEndian.PutUint32(out[img.checksumOff:], checksum(out, img.checksumOff))
	return out, nil
}

// spcIndirectDataContent is the signed content: "this is a PE image whose
// Authenticode digest is digest".
func spcIndirectDataContent(digest []byte) []byte {
	// SpcPeImageData: empty flags and the customary "<<<Obsolete>>>" file link.
	peImageData := seq(
		[]byte{0x03, 0x01, 0x00},
		explicit(0, tlv(0xa2, tlv(0x80, bmpString("<<<Obsolete>>>")))),
	)
	return seq(
		seq(oid(oidSpcPEImageData), peImageData),
		seq(algorithm(oidSHA256), octets(digest)),
	)
}

// signedData builds the PKCS#7 ContentInfo of an Authenticode signature.
func signedData(digest []byte, kp *KeyPair) ([]byte, error) {
	content := spcIndirectDataContent(digest)
	// The message digest covers the content's value, without its tag and length.
	contentDigest := sha256.Sum256(contentOf(content))
	attrs := [][]byte{
		seq(oid(oidContentType), set(oid(oidSpcIndirectData))),
		seq(oid(oidSpcSpOpusInfo), set(seq())),
		seq(oid(oidMessageDigest), set(octets(contentDigest[:]))),
	}
	signedAttrs := derSetOf(0x31, attrs...)
	h := sha256.Sum256(signedAttrs)
	sig, err := rsa.SignPKCS1v15(rand.Reader, kp.Key, crypto.SHA256, h[:])
	if err != nil {
		return nil, fmt.Errorf("signing: %w", err)
	}
	serial, err := asn1.Marshal(kp.Cert.SerialNumber)
	if err != nil {
		return nil, err
	}
	signerInfo := seq(
		integer(1),
		seq(kp.Cert.RawIssuer, serial),
		algorithm(oidSHA256),
		append([]byte{0xa0}, signedAttrs[1:]...), // [0] IMPLICIT SET OF Attribute
		algorithm(oidRSAEncryption),
		octets(sig),
	)
	sd := seq(
		integer(1),
		set(algorithm(oidSHA256)),
		seq(oid(oidSpcIndirectData), explicit(0, content)),
		explicit(0, kp.Cert.Raw), // [0] IMPLICIT SET OF Certificate
		set(signerInfo),
	)
	return seq(oid(oidSignedData), explicit(0, sd)), nil
}
