package authenticode

import (
	"bytes"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/binary"
	"fmt"
	"hash"
	"math/big"
	"strings"
)

// Signer is one Authenticode signature of an image.
type Signer struct {
	// Subject and Issuer are the signer certificate's, in OpenSSL's
	// one-line form ("/C=US/O=Microsoft Corporation/CN=..."), as
	// sbverify and osslsigncode print them. The issuer is what the
	// firmware's db must trust (directly or up its chain).
	Subject string `json:"subject"`
	Issuer  string `json:"issuer"`
	// DigestOK says the signed digest matches the image as it is now:
	// false means the image was changed after it was signed.
	DigestOK bool `json:"digest_ok"`
}

// PKCS#7 and Authenticode structures, as much of them as Signers reads.
type contentInfo struct {
	ContentType asn1.ObjectIdentifier
	Content     asn1.RawValue `asn1:"explicit,tag:0"`
}

type pkcs7SignedData struct {
	Version          int
	DigestAlgorithms asn1.RawValue
	ContentInfo      contentInfo
	Certificates     asn1.RawValue `asn1:"optional,tag:0"`
	CRLs             asn1.RawValue `asn1:"optional,tag:1"`
	SignerInfos      []signerInfo  `asn1:"set"`
}

type signerInfo struct {
	Version         int
	IssuerAndSerial struct {
		Issuer asn1.RawValue
		Serial *big.Int
	}
	DigestAlgorithm  pkix.AlgorithmIdentifier
	AuthAttrs        asn1.RawValue `asn1:"optional,tag:0"`
	SignatureAlgo    pkix.AlgorithmIdentifier
	Signature        []byte
	UnauthAttributes asn1.RawValue `asn1:"optional,tag:1"`
}

type attribute struct {
	Type   asn1.ObjectIdentifier
	Values asn1.RawValue // SET OF ANY
}

type indirectData struct {
	Data          asn1.RawValue
	MessageDigest struct {
		Algorithm pkix.AlgorithmIdentifier
		Digest    []byte
	}
}

// Signers returns every Authenticode signature in a PE image, in the order
// of the certificate table, each followed by the signatures nested in it.
// An unsigned image has none. An error means the image or a signature in
// it cannot be read.
func Signers(pe []byte) ([]Signer, error) {
	img, err := parse(pe)
	if err != nil {
		return nil, err
	}
	var out []Signer
	digests := map[string][]byte{}
	digest := func(o asn1.ObjectIdentifier) []byte {
		var h hash.Hash
		switch {
		case o.Equal(oidSHA256):
			h = sha256.New()
		case o.Equal(oidSHA1):
			h = sha1.New()
		default:
			return nil
		}
		if d, ok := digests[o.String()]; ok {
			return d
		}
		for _, r := range img.digestRegions() {
			h.Write(r)
		}
		digests[o.String()] = h.Sum(nil)
		return digests[o.String()]
	}
	table := pe[img.certOff : img.certOff+img.certSize]
	for off := 0; off+8 <= len(table); {
		length := int(binary.LittleEndian.Uint32(table[off:]))
		typ := binary.LittleEndian.Uint16(table[off+6:])
		if length < 8 || off+length > len(table) {
			return out, fmt.Errorf("certificate table entry at %d has a bad length %d", off, length)
		}
		if typ == winCertTypePKCSSign {
			s, err := readSignedData(table[off+8:off+length], digest, 0)
			if err != nil {
				return out, fmt.Errorf("certificate table entry at %d: %w", off, err)
			}
			out = append(out, s...)
		}
		off += (length + 7) &^ 7
	}
	return out, nil
}

// readSignedData reads one PKCS#7 ContentInfo holding Authenticode
// SignedData, and the signatures nested in its signers' unauthenticated
// attributes.
func readSignedData(der []byte, digest func(asn1.ObjectIdentifier) []byte, depth int) ([]Signer, error) {
	if depth > 4 {
		return nil, fmt.Errorf("signatures nested too deep")
	}
	var ci contentInfo
	if _, err := asn1.Unmarshal(der, &ci); err != nil {
		return nil, fmt.Errorf("not a PKCS#7 ContentInfo: %w", err)
	}
	if !ci.ContentType.Equal(oidSignedData) {
		return nil, fmt.Errorf("PKCS#7 content type %s is not SignedData", ci.ContentType)
	}
	var sd pkcs7SignedData
	if _, err := asn1.Unmarshal(ci.Content.Bytes, &sd); err != nil {
		return nil, fmt.Errorf("reading SignedData: %w", err)
	}
	if !sd.ContentInfo.ContentType.Equal(oidSpcIndirectData) {
		return nil, fmt.Errorf("signed content type %s is not SpcIndirectDataContent", sd.ContentInfo.ContentType)
	}
	var idc indirectData
	if _, err := asn1.Unmarshal(sd.ContentInfo.Content.Bytes, &idc); err != nil {
		return nil, fmt.Errorf("reading SpcIndirectDataContent: %w", err)
	}
	want := digest(idc.MessageDigest.Algorithm.Algorithm)
	ok := want != nil && bytes.Equal(want, idc.MessageDigest.Digest)
	var certs []*x509.Certificate
	if len(sd.Certificates.Bytes) > 0 {
		var err error
		if certs, err = x509.ParseCertificates(sd.Certificates.Bytes); err != nil {
			return nil, fmt.Errorf("reading the signature's certificates: %w", err)
		}
	}
	var out []Signer
	for _, si := range sd.SignerInfos {
		s := Signer{Issuer: oneLine(si.IssuerAndSerial.Issuer.FullBytes), DigestOK: ok}
		for _, c := range certs {
			if bytes.Equal(c.RawIssuer, si.IssuerAndSerial.Issuer.FullBytes) && c.SerialNumber.Cmp(si.IssuerAndSerial.Serial) == 0 {
				s.Subject = oneLine(c.RawSubject)
			}
		}
		out = append(out, s)
		if len(si.UnauthAttributes.Bytes) == 0 {
			continue
		}
		for rest := si.UnauthAttributes.Bytes; len(rest) > 0; {
			var a attribute
			var err error
			if rest, err = asn1.Unmarshal(rest, &a); err != nil {
				return out, fmt.Errorf("reading unauthenticated attributes: %w", err)
			}
			if !a.Type.Equal(oidNestedSignature) {
				continue
			}
			for vals := a.Values.Bytes; len(vals) > 0; {
				var v asn1.RawValue
				if vals, err = asn1.Unmarshal(vals, &v); err != nil {
					return out, fmt.Errorf("reading a nested signature: %w", err)
				}
				nested, err := readSignedData(v.FullBytes, digest, depth+1)
				if err != nil {
					return out, fmt.Errorf("nested signature: %w", err)
				}
				out = append(out, nested...)
			}
		}
	}
	return out, nil
}

// Short names OpenSSL prints for the attribute types of a Name.
var attrNames = map[string]string{
	"2.5.4.3": "CN", "2.5.4.6": "C", "2.5.4.7": "L", "2.5.4.8": "ST", "2.5.4.10": "O", "2.5.4.11": "OU",
	"2.5.4.5": "serialNumber", "2.5.4.4": "SN", "2.5.4.42": "GN", "2.5.4.12": "title",
	"1.2.840.113549.1.9.1": "emailAddress", "0.9.2342.19200300.100.1.25": "DC", "0.9.2342.19200300.100.1.1": "UID",
}

// oneLine formats a DER Name as OpenSSL's one-line form: "/C=US/CN=Name",
// in the order the attributes are encoded.
func oneLine(der []byte) string {
	var rdns pkix.RDNSequence
	if _, err := asn1.Unmarshal(der, &rdns); err != nil {
		return "(unreadable name)"
	}
	var b strings.Builder
	for _, rdn := range rdns {
		for _, atv := range rdn {
			name, ok := attrNames[atv.Type.String()]
			if !ok {
				name = atv.Type.String()
			}
			fmt.Fprintf(&b, "/%s=%v", name, atv.Value)
		}
	}
	return b.String()
}
