// Package attest signs and checks what a build says about itself: an
// in-toto v1 statement with the SLSA v1 provenance predicate, in a DSSE
// envelope (provenance.dsse.json), and a Sigstore bundle (v0.3, a message
// signature with a public-key hint) over manifest.json
// (manifest.json.sigstore.json), both signed with ECDSA P-256 over SHA-256
// (ASN.1 signatures) from a PEM PKCS#8 key. VerifyArtifact checks a
// published build against a public key: the signature, every file's
// sha256 against the statement and the manifest, and the SBOMs against the
// manifest's package list.
//
// It uses only the standard library's crypto: no Sigstore client, no
// transparency log, no network. cosign verify-blob --key accepts the bundle
// offline, and openssl verifies both signatures (docs/supply-chain.md).
// It does not decide what a build records (package builder does).
package attest
