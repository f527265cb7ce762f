package attest

import (
	"encoding/json"
	"time"
)

// File names inside an artifact.
const (
	ProvenanceFile = "provenance.dsse.json"
	BundleFile     = "manifest.json.sigstore.json"
)

// Identifiers of what Kiln attests.
const (
	StatementType  = "https://in-toto.io/Statement/v1"
	PredicateSLSA1 = "https://slsa.dev/provenance/v1"
	// BuildType names the meaning of Kiln's externalParameters and
	// internalParameters (docs/supply-chain.md).
	BuildType = "https://github.com/kiln-build/kiln/buildtypes/image/v1"
	// BuilderID is a build run by the kiln CLI on the machine it runs on.
	BuilderID = "https://github.com/kiln-build/kiln/builders/local"
)

// Statement is an in-toto v1 statement with the SLSA v1 provenance
// predicate.
type Statement struct {
	Type          string     `json:"_type"`
	Subject       []Subject  `json:"subject"`
	PredicateType string     `json:"predicateType"`
	Predicate     Provenance `json:"predicate"`
}

// Subject is one attested file and its digest.
type Subject struct {
	Name   string            `json:"name"`
	Digest map[string]string `json:"digest"`
}

// Provenance is the SLSA v1 provenance predicate.
type Provenance struct {
	BuildDefinition BuildDefinition `json:"buildDefinition"`
	RunDetails      RunDetails      `json:"runDetails"`
}

// BuildDefinition is what the build was asked to do and what it used.
type BuildDefinition struct {
	BuildType            string               `json:"buildType"`
	ExternalParameters   any                  `json:"externalParameters"`
	InternalParameters   any                  `json:"internalParameters,omitempty"`
	ResolvedDependencies []ResourceDescriptor `json:"resolvedDependencies,omitempty"`
}

// ResourceDescriptor names an artifact the build used.
type ResourceDescriptor struct {
	Name        string            `json:"name,omitempty"`
	URI         string            `json:"uri,omitempty"`
	Digest      map[string]string `json:"digest,omitempty"`
	Annotations map[string]any    `json:"annotations,omitempty"`
}

// RunDetails is who built it and when.
type RunDetails struct {
	Builder  Builder       `json:"builder"`
	Metadata BuildMetadata `json:"metadata"`
}

// Builder identifies the builder.
type Builder struct {
	ID      string            `json:"id"`
	Version map[string]string `json:"version,omitempty"`
}

// BuildMetadata identifies one run.
type BuildMetadata struct {
	InvocationID string    `json:"invocationId,omitempty"`
	StartedOn    time.Time `json:"startedOn"`
	FinishedOn   time.Time `json:"finishedOn"`
}

// Encode is the statement's JSON, the DSSE payload.
func (s *Statement) Encode() ([]byte, error) { return json.Marshal(s) }
