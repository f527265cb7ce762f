package attest

import (
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
)

// PayloadType is the DSSE payload type of an in-toto statement.
const PayloadType = "application/vnd.in-toto+json"

// Envelope is a DSSE envelope (secure-systems-lab/dsse, envelope.md).
type Envelope struct {
	PayloadType string      `json:"payloadType"`
	Payload     string      `json:"payload"` // base64 (standard)
	Signatures  []Signature `json:"signatures"`
}

// Signature is one signature of an envelope: ECDSA over SHA-256 of the
// PAE, ASN.1 DER, base64.
type Signature struct {
	KeyID string `json:"keyid,omitempty"`
	Sig   string `json:"sig"`
}

// PAE is DSSE's pre-authentication encoding, what is signed:
// "DSSEv1" SP LEN(type) SP type SP LEN(body) SP body.
func PAE(payloadType string, payload []byte) []byte {
	b := []byte("DSSEv1 " + strconv.Itoa(len(payloadType)) + " " + payloadType + " " + strconv.Itoa(len(payload)) + " ")
	return append(b, payload...)
}

// Seal wraps payload in an envelope signed with key; with a nil key the
// envelope has no signatures (an unsigned build's statement).
func Seal(payloadType string, payload []byte, key *ecdsa.PrivateKey) (*Envelope, error) {
	e := &Envelope{PayloadType: payloadType, Payload: base64.StdEncoding.EncodeToString(payload), Signatures: []Signature{}}
	if key == nil {
		return e, nil
	}
	sum := sha256.Sum256(PAE(payloadType, payload))
	sig, err := ecdsa.SignASN1(rand.Reader, key, sum[:])
	if err != nil {
		return nil, err
	}
	e.Signatures = append(e.Signatures, Signature{KeyID: KeyID(&key.PublicKey), Sig: base64.StdEncoding.EncodeToString(sig)})
	return e, nil
}

// Errors of Open.
var (
	ErrUnsigned     = errors.New("the envelope has no signature")
	ErrBadSignature = errors.New("no signature verifies with the key")
)

// Open checks that a signature of the envelope verifies with pub and
// returns the payload.
func (e *Envelope) Open(pub *ecdsa.PublicKey) ([]byte, error) {
	payload, err := base64.StdEncoding.DecodeString(e.Payload)
	if err != nil {
		return nil, fmt.Errorf("the payload is not base64: %w", err)
	}
	if len(e.Signatures) == 0 {
		return nil, ErrUnsigned
	}
	sum := sha256.Sum256(PAE(e.PayloadType, payload))
	for _, s := range e.Signatures {
		sig, err := base64.StdEncoding.DecodeString(s.Sig)
		if err == nil && ecdsa.VerifyASN1(pub, sum[:], sig) {
			return payload, nil
		}
	}
	keys := ""
	for _, s := range e.Signatures {
		if s.KeyID != "" {
			keys += " " + s.KeyID
		}
	}
	if keys != "" {
		return nil, fmt.Errorf("%w %s (signed by key%s)", ErrBadSignature, KeyID(pub), keys)
	}
	return nil, fmt.Errorf("%w %s", ErrBadSignature, KeyID(pub))
}

// Encode is the envelope as written: indented JSON with a final newline.
func (e *Envelope) Encode() ([]byte, error) {
	data, err := json.MarshalIndent(e, "", "  ")
	return append(data, '\n'), err
}
