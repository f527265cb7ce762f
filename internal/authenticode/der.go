package authenticode

import (
	"bytes"
	"encoding/asn1"
	"sort"
)

// DER building blocks for the structures Sign writes. Each returns one
// complete TLV.

func tlv(tag byte, parts ...[]byte) []byte {
	content := bytes.Join(parts, nil)
	n := len(content)
	var out []byte
	switch {
	case n < 0x80:
		out = append(out, tag, byte(n))
	case n < 0x100:
		out = append(out, tag, 0x81, byte(n))
	case n < 0x10000:
		out = append(out, tag, 0x82, byte(n>>8), byte(n))
	case n < 0x1000000:
		out = append(out, tag, 0x83, byte(n>>16), byte(n>>8), byte(n))
	default:
		out = append(out, tag, 0x84, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
	return append(out, content...)
}

func seq(parts ...[]byte) []byte              { return tlv(0x30, parts...) }
func set(parts ...[]byte) []byte              { return tlv(0x31, parts...) }
func explicit(n byte, parts ...[]byte) []byte { return tlv(0xa0|n, parts...) }
func octets(b []byte) []byte                  { return tlv(0x04, b) }
func null() []byte                            { return []byte{0x05, 0x00} }

func oid(o asn1.ObjectIdentifier) []byte {
	b, err := asn1.Marshal(o)
	if err != nil {
		panic(err) // only constant, valid identifiers are passed
	}
	return b
}

func integer(i int) []byte {
	b, err := asn1.Marshal(i)
	if err != nil {
		panic(err)
	}
	return b
}

// algorithm is an AlgorithmIdentifier with NULL parameters.
func algorithm(o asn1.ObjectIdentifier) []byte { return seq(oid(o), null()) }

// derSetOf is a DER SET OF: the elements sorted by their encodings.
func derSetOf(tag byte, elems ...[]byte) []byte {
	sorted := append([][]byte(nil), elems...)
	sort.Slice(sorted, func(i, j int) bool { return bytes.Compare(sorted[i], sorted[j]) < 0 })
	return tlv(tag, sorted...)
}

// bmpString encodes s (ASCII) as a BMPString's UTF-16BE content.
func bmpString(s string) []byte {
	out := make([]byte, 0, 2*len(s))
	for _, r := range s {
		out = append(out, byte(r>>8), byte(r))
	}
	return out
}

// contentOf returns the content octets of the one DER TLV in b.
func contentOf(b []byte) []byte {
	var rv asn1.RawValue
	if _, err := asn1.Unmarshal(b, &rv); err != nil {
		return nil
	}
	return rv.Bytes
}
