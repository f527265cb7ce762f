// Package pgp writes the two OpenPGP (RFC 4880) objects GRUB's signature
// verifier reads: an RSA public key (embedded into GRUB with
// grub-mkimage --pubkey) and detached binary signatures (FILE.sig), made
// from the same RSA key that signs Kiln's EFI binaries.
//
// Everything is deterministic: the key and signature creation times are
// given by the caller (Kiln passes the certificate's NotBefore), and RSA
// PKCS#1 v1.5 signatures have no randomness, so the same key and data give
// the same bytes.
//
// It does not read OpenPGP data, manage keyrings or support other
// algorithms than RSA with SHA-256. gpgv judges its output in the tests.
package pgp

import (
	"bytes"
	"crypto"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
	"math/big"
	"time"
)

// Packet tags and constants of RFC 4880.
const (
	tagSignature = 2
	tagPublicKey = 6
	tagUserID    = 13

	algoRSA    = 1
	hashSHA256 = 8

	sigBinary        = 0x00
	sigPositiveCert  = 0x13
	subCreationTime  = 2
	subIssuer        = 16
	subKeyFlags      = 27
	subIssuerFprint  = 33
	keyFlagSignCert  = 0x03
	fingerprintV4Len = 20
)

// packet frames body as an old-format packet with a four-octet length,
// the framing GRUB's reader and every OpenPGP implementation accept.
func packet(tag byte, body []byte) []byte {
	out := []byte{0x80 | tag<<2 | 2, 0, 0, 0, 0}
	binary.BigEndian.PutUint32(out[1:], uint32(len(body)))
	return append(out, body...)
}

// mpi encodes a multiprecision integer: its bit count, then its bytes.
func mpi(n *big.Int) []byte {
	b := n.Bytes()
	out := []byte{byte(n.BitLen() >> 8), byte(n.BitLen())}
	return append(out, b...)
}

// keyBody is the body of a version 4 RSA public key packet.
func keyBody(pub *rsa.PublicKey, created time.Time) []byte {
	body := []byte{4, 0, 0, 0, 0, algoRSA}
	binary.BigEndian.PutUint32(body[1:], uint32(created.Unix()))
	body = append(body, mpi(pub.N)...)
	return append(body, mpi(big.NewInt(int64(pub.E)))...)
}

// Fingerprint is the version 4 fingerprint of the key: SHA-1 over the
// key packet. Its last 8 bytes are the key ID signatures refer to.
func Fingerprint(pub *rsa.PublicKey, created time.Time) []byte {
	body := keyBody(pub, created)
	h := sha1.New()
	h.Write([]byte{0x99, byte(len(body) >> 8), byte(len(body))})
	h.Write(body)
	return h.Sum(nil)
}

// PublicKey returns a transferable public key: the key packet, a user ID
// and the key's self-signature over them.
func PublicKey(key *rsa.PrivateKey, userID string, created time.Time) ([]byte, error) {
	body := keyBody(&key.PublicKey, created)
	uid := []byte(userID)
	prefix := []byte{0x99, byte(len(body) >> 8), byte(len(body))}
	prefix = append(prefix, body...)
	uidHeader := []byte{0xb4, 0, 0, 0, 0}
	binary.BigEndian.PutUint32(uidHeader[1:], uint32(len(uid)))
	prefix = append(append(prefix, uidHeader...), uid...)
	selfSig, err := signature(key, created, sigPositiveCert, []byte{keyFlagSignCert}, bytes.NewReader(prefix))
	if err != nil {
		return nil, err
	}
	out := packet(tagPublicKey, body)
	out = append(out, packet(tagUserID, uid)...)
	return append(out, selfSig...), nil
}

// DetachedSignature returns a binary-document signature of data by key
// (what `gpg --detach-sign --digest-algo SHA256` writes, FILE.sig).
func DetachedSignature(key *rsa.PrivateKey, created time.Time, data io.Reader) ([]byte, error) {
	return signature(key, created, sigBinary, nil, data)
}

// signature makes a version 4 signature packet of the given type over the
// bytes data yields. keyFlags, when set, adds a key flags subpacket (for
// self-signatures).
func signature(key *rsa.PrivateKey, created time.Time, sigType byte, keyFlags []byte, data io.Reader) ([]byte, error) {
	fp := Fingerprint(&key.PublicKey, created)
	var hashed []byte
	ts := make([]byte, 4)
	binary.BigEndian.PutUint32(ts, uint32(created.Unix()))
	hashed = append(hashed, 5, subCreationTime)
	hashed = append(hashed, ts...)
	hashed = append(hashed, 2+fingerprintV4Len, subIssuerFprint, 4)
	hashed = append(hashed, fp...)
	if keyFlags != nil {
		hashed = append(hashed, byte(1+len(keyFlags)), subKeyFlags)
		hashed = append(hashed, keyFlags...)
	}
	unhashed := append([]byte{9, subIssuer}, fp[len(fp)-8:]...)

	head := []byte{4, sigType, algoRSA, hashSHA256, byte(len(hashed) >> 8), byte(len(hashed))}
	head = append(head, hashed...)
	h := sha256.New()
	if _, err := io.Copy(h, data); err != nil {
		return nil, fmt.Errorf("reading the data to sign: %w", err)
	}
	h.Write(head)
	trailer := []byte{4, 0xff, 0, 0, 0, 0}
	binary.BigEndian.PutUint32(trailer[2:], uint32(len(head)))
	h.Write(trailer)
	digest := h.Sum(nil)
	sig, err := rsa.SignPKCS1v15(nil, key, crypto.SHA256, digest)
	if err != nil {
		return nil, fmt.Errorf("signing: %w", err)
	}
	body := append([]byte(nil), head...)
	body = append(body, byte(len(unhashed)>>8), byte(len(unhashed)))
	body = append(body, unhashed...)
	body = append(body, digest[0], digest[1])
	body = append(body, mpi(new(big.Int).SetBytes(sig))...)
	return packet(tagSignature, body), nil
}
